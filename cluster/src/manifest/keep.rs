//! Which parsed objects a loader keeps, and in what form.

use crate::kind::{Kind, KindSet, Object};
use crate::shared::SharedObject;
use crate::trim::Trim;

/// The kinds a loader keeps and the trim it applies to them.
///
/// It exists so a parsed object is filtered and trimmed before the loader
/// stores it: the loader's per-file copy is the one the snapshot shares, so
/// it must already be the trimmed one. The default keeps every kind whole.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Keep {
    pub(crate) kinds: KindSet,
    pub(crate) trim: Option<Trim>,
}

impl Default for Keep {
    fn default() -> Self {
        Keep {
            kinds: KindSet::ALL,
            trim: None,
        }
    }
}

impl Keep {
    /// `object` as stored, or `None` when its kind is not kept.
    pub(crate) fn object(&self, mut object: Object) -> Option<SharedObject> {
        if !self.kinds.contains(object.kind()) {
            return None;
        }
        if let Some(trim) = self.trim {
            trim.apply(&mut object);
        }
        Some(object.into())
    }

    /// Whether core/v1 Endpoints are worth keeping: they only matter as the
    /// source of mirrored EndpointSlices.
    pub(crate) fn endpoints(&self) -> bool {
        self.kinds.contains(Kind::EndpointSlice)
    }
}
