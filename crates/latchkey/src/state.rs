//! `AppState`: what a request handler or extractor may reach. Services and repos never take
//! it; they are handed the narrow handles they use (a store, the `SecretBox`, the clock).

use std::ops::Deref;
use std::sync::Arc;

use metrics_exporter_prometheus::PrometheusHandle;

use crate::admin::AdminTokens;
use crate::apps::{Apps, ChangeFeed};
use crate::audit::AuditSink;
use crate::clock::Clock;
use crate::config::Config;
use crate::crypto::SecretBox;
use crate::mail::Mailer;
use crate::mail::throttle::MailThrottle;
use crate::signin::password::Passwords;
use crate::signin::throttle::Throttle;
use crate::store::{ControlDb, IdentityStores, Ts};
use crate::tenant::IssuerCache;
use crate::web::pages::Pages;

/// Everything a request or background task may need. Cheap to clone.
#[derive(Clone)]
pub struct AppState(pub(crate) Arc<Inner>);

pub struct Inner {
    pub config: Config,
    pub control: ControlDb,
    pub identity: Arc<IdentityStores>,
    pub secrets: Arc<SecretBox>,
    pub clock: Arc<dyn Clock>,
    pub changes: Arc<ChangeFeed>,
    /// The app lifecycle service (narrow handles onto the above).
    pub apps: Apps,
    pub issuers: IssuerCache,
    pub audit: AuditSink,
    pub admin_tokens: AdminTokens,
    pub metrics: PrometheusHandle,
    pub passwords: Passwords,
    /// Failed sign-ins per account and client address (SPEC §7).
    pub throttle: Throttle,
    pub pages: Arc<Pages>,
    /// Wakes the outbox sender (mail::outbox).
    pub mailer: Mailer,
    /// How often mail may be asked for (mail::throttle).
    pub mail_throttle: Arc<MailThrottle>,
    /// Upstream providers' discovery documents and keys, shared by every app (SPEC §7a).
    pub upstreams: Arc<crate::upstream::Upstreams>,
    /// The last check of the apps' stores that `/readyz` reports (ops::health).
    pub readiness: Arc<crate::ops::health::Readiness>,
}

impl Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl AppState {
    pub fn now(&self) -> Ts {
        Ts::new(self.clock.now())
    }

    /// What queuing mail needs, for the mail and invitation services.
    pub fn post(&self) -> crate::mail::Post<'_> {
        crate::mail::Post { secrets: &self.secrets, mailer: &self.mailer, now: self.now() }
    }
}

impl axum::extract::FromRef<AppState> for IssuerCache {
    fn from_ref(state: &AppState) -> IssuerCache {
        state.issuers.clone()
    }
}

impl axum::extract::FromRef<AppState> for Arc<Pages> {
    fn from_ref(state: &AppState) -> Arc<Pages> {
        state.pages.clone()
    }
}
