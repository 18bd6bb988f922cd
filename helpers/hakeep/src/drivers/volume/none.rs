//! `none`: the storage is already shared or replicated; nothing to attach or fence.

use crate::drivers::{Context, DriverError, Kind, Observed, Resource};

pub struct NoVolume;

impl Resource for NoVolume {
    fn id(&self) -> String {
        "volume:none".to_string()
    }

    fn kind(&self) -> Kind {
        Kind::Volume
    }

    fn observe(&self, _ctx: &Context) -> Result<Observed, DriverError> {
        Ok(Observed::NotApplicable)
    }

    fn take(&self, _ctx: &Context) -> Result<(), DriverError> {
        Ok(())
    }

    fn release(&self, _ctx: &Context) -> Result<(), DriverError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drivers::Timeouts;
    use crate::exec::RecordingRunner;

    #[test]
    fn none_runs_nothing() {
        let (runner, timeouts) = (RecordingRunner::new(), Timeouts::default());
        let ctx = Context::plain(&runner, &timeouts);
        assert_eq!(NoVolume.id(), "volume:none");
        assert_eq!(NoVolume.observe(&ctx).unwrap(), Observed::NotApplicable);
        NoVolume.take(&ctx).unwrap();
        NoVolume.release(&ctx).unwrap();
        assert!(runner.calls().is_empty());
    }
}
