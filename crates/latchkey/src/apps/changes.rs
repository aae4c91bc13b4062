//! Local change generations per app. Services touch an app when its configuration changes on
//! this replica; caches compare generations on every use and reload at once on a mismatch.
//! Changes made by other replicas are picked up by the caches' periodic version check.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::RwLock;

#[derive(Default)]
pub struct ChangeFeed {
    generations: RwLock<HashMap<String, Arc<AtomicU64>>>,
}

impl ChangeFeed {
    /// The generation counter of `slug`, shared so readers need no lock after the first call.
    pub fn counter(&self, slug: &str) -> Arc<AtomicU64> {
        if let Some(c) = self.generations.read().get(slug) {
            return c.clone();
        }
        self.generations.write().entry(slug.to_string()).or_default().clone()
    }

    /// Records that `slug`'s configuration changed.
    pub fn touch(&self, slug: &str) {
        self.counter(slug).fetch_add(1, Ordering::SeqCst);
    }
}
