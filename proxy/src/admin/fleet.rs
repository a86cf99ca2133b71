//! The admin endpoint in fleet mode: operator overrides are written to the
//! fleet's store (every instance, this one included, applies them from
//! there, see [`crate::fleet::overrides`]), and `GET /api/v1/fleet` lists
//! the registered instances with the revision each runs and its shares.

use super::{json, json_error};
use crate::config::BackendId;
use crate::fleet::commands::FleetStatus;
use crate::fleet::overrides::OverrideChange;
use crate::fleet::store::{Store, StoreUrl};
use http::{Response, StatusCode};
use serde_json::json;

type Reply = Response<Vec<u8>>;

/// This instance's place in a fleet.
#[derive(Debug, Clone)]
pub struct FleetAdmin {
    pub url: StoreUrl,
    pub instance: String,
}

impl FleetAdmin {
    /// Store an override for the whole fleet: 200 with the store revision
    /// that holds it, or 503 when the store cannot be written (nothing
    /// changed anywhere).
    pub async fn store_override(&self, id: &BackendId, change: &OverrideChange) -> Reply {
        let stored = async {
            let mut store = Store::connect(&self.url).await?;
            store.store_override(id, change, &self.instance).await
        };
        match stored.await {
            Ok(revision) => json(
                StatusCode::OK,
                &json!({
                    "backend": id.0,
                    "action": change.action(),
                    "status": "stored",
                    "scope": "fleet",
                    "revision": revision,
                }),
            ),
            Err(e) => json_error(
                StatusCode::SERVICE_UNAVAILABLE,
                &format!("the fleet's store could not be written, so nothing changed: {e}"),
            ),
        }
    }

    /// `GET /api/v1/fleet`: the stored configuration's revision and every
    /// registered instance.
    pub async fn members(&self) -> Reply {
        match FleetStatus::read(&self.url).await {
            Ok(status) => {
                let mut view = status.to_json();
                view["store"] = json!(self.url.to_string());
                view["this_instance"] = json!(self.instance);
                json(StatusCode::OK, &view)
            }
            Err(e) => json_error(
                StatusCode::SERVICE_UNAVAILABLE,
                &format!("the fleet's store could not be read: {e}"),
            ),
        }
    }
}
