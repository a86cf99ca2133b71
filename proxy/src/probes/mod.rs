//! Requests Ballast makes on its own, off the request path: active health
//! checks (`health`), load polls of quiet backends (`load_poll`), and the
//! one-shot `ballast probe` command for container health checks
//! (`http_probe`).

pub mod health;
pub mod http_probe;
pub mod load_poll;
