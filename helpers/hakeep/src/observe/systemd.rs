// STUB until the D-Bus module lands.
use std::sync::Arc;
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UnitState {
    pub load_state: String,
    pub active_state: String,
    pub sub_state: String,
    pub result: String,
}
impl UnitState {
    pub fn is_active(&self) -> bool {
        self.active_state == "active" || self.active_state == "reloading"
    }
}
#[derive(Debug, thiserror::Error)]
#[error("stub")]
pub struct SystemdError;
pub struct Systemd;
impl Systemd {
    pub fn connect(
        _units: &[String],
        _on_change: impl Fn(&str) + Send + Sync + 'static,
    ) -> Result<Arc<Systemd>, SystemdError> {
        Err(SystemdError)
    }
    pub fn state(&self, _unit: &str) -> Result<UnitState, SystemdError> {
        Err(SystemdError)
    }
    pub fn refresh(&self) -> Result<(), SystemdError> {
        Ok(())
    }
    pub fn start(&self, _unit: &str, _timeout: std::time::Duration) -> Result<(), SystemdError> {
        Err(SystemdError)
    }
    pub fn stop(&self, _unit: &str, _timeout: std::time::Duration) -> Result<(), SystemdError> {
        Err(SystemdError)
    }
}
