//! Files served over plain HTTP, compiled into the binary so that it runs from anywhere.

/// The demo game (`GET /`).
pub(crate) const INDEX_HTML: &str = include_str!("../assets/index.html");
/// The demo game's script.
pub(crate) const DEMO_JS: &str = include_str!("../assets/demo.js");
/// The JavaScript client, the same file as `clients/js/sessionserver.js`.
pub(crate) const CLIENT_JS: &str = include_str!("../../clients/js/sessionserver.js");
/// The live monitor (`GET /monitor`, admin only).
pub(crate) const MONITOR_HTML: &str = include_str!("../assets/monitor.html");
