//! The REST answers the bench and the torture suite read (`/rest/db/status`,
//! `/rest/system/connections`), parsed by serde_json, with the few typed accessors they use.

/// A parsed JSON value.
pub type Json = serde_json::Value;

/// Parses a whole document.
pub fn parse(text: &str) -> Result<Json, String> {
    serde_json::from_str(text).map_err(|e| format!("bad JSON from the daemon: {e}"))
}

/// Typed member access on an object.
pub trait Members {
    /// The number at `key`.
    fn num(&self, key: &str) -> Option<f64>;
    /// The string at `key`.
    fn str(&self, key: &str) -> Option<&str>;
    /// The boolean at `key`.
    fn bool(&self, key: &str) -> Option<bool>;
}

impl Members for Json {
    fn num(&self, key: &str) -> Option<f64> {
        self.get(key).and_then(Json::as_f64)
    }
    fn str(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(Json::as_str)
    }
    fn bool(&self, key: &str) -> Option<bool> {
        self.get(key).and_then(Json::as_bool)
    }
}
