// STUB until the netlink module lands.
use std::net::IpAddr;
use std::sync::Arc;
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressEvent {
    pub interface: String,
    pub address: IpAddr,
    pub prefix: u8,
    pub added: bool,
}
#[derive(Debug, thiserror::Error)]
#[error("stub")]
pub struct AddressError;
pub struct Addresses;
impl Addresses {
    pub fn start(
        _on_change: impl Fn(&AddressEvent) + Send + Sync + 'static,
    ) -> Result<Arc<Addresses>, AddressError> {
        Ok(Arc::new(Addresses))
    }
    pub fn has(&self, _interface: &str, _address: IpAddr) -> bool {
        false
    }
    pub fn all(&self) -> Vec<IpAddr> {
        Vec::new()
    }
    pub fn resync(&self) -> Result<(), AddressError> {
        Ok(())
    }
    pub fn remove(
        &self,
        _i: &str,
        _a: IpAddr,
        _p: u8,
        _t: std::time::Duration,
    ) -> Result<(), AddressError> {
        Ok(())
    }
}
