//! The compiled route table: routes in configuration order, each with its
//! match conditions, pool and event budget. Matching a request against it is
//! `routing::table`'s job.

use super::rate_limits::RateLimit;
use super::redirects::Redirect;
use super::route_edits::RouteEdits;
use super::{BudgetPolicy, PoolId};
use http::{HeaderName, HeaderValue, Method};

/// How a route matches the request's host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostMatch {
    /// The whole host, lower-case.
    Exact(String),
    /// Any subdomain of this suffix; stored with its leading dot (`.example.com`).
    Subdomain(String),
}

/// One compiled route.
#[derive(Debug, Clone)]
pub struct Route {
    pub name: String,
    pub host: Option<HostMatch>,
    pub path_prefix: Option<String>,
    pub methods: Option<Vec<Method>>,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// The pool that serves the route; `None` for a redirect.
    pub pool: Option<PoolId>,
    /// The route's event budget, if it has one.
    pub budget: Option<BudgetPolicy>,
    /// What the route changes in the request and response.
    pub edits: RouteEdits,
    /// Answer with this redirect instead of proxying.
    pub redirect: Option<Redirect>,
    /// The largest request body, overriding `server.limits.max_body_bytes`.
    pub max_body_bytes: Option<u64>,
    /// The route's per-client rate limit and its buckets.
    pub rate_limit: Option<std::sync::Arc<RateLimit>>,
}

/// The routes of a snapshot, in configuration order.
#[derive(Debug, Clone, Default)]
pub struct RouteTable {
    routes: Vec<Route>,
}

impl RouteTable {
    pub fn new(routes: Vec<Route>) -> Self {
        Self { routes }
    }

    pub fn routes(&self) -> &[Route] {
        &self.routes
    }
}
