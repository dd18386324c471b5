//! Conversation-history backfill (anchor §3.21, `migrate_conversation_history_to_thread`):
//! repairs `conversation_history_orphan` — an award's WhatsApp conversation with no thread
//! timeline — by giving each award of a tender its context `award_<awardId>` (and thread) and
//! one `thread_items` row per WhatsApp message, and by linking the `conversation_messages` of
//! those messages to the context and the item.
//!
//! Layering: [`source`] reads (paged, through the `InstantApi` port only), [`mod@plan`] decides
//! (pure: rows in, steps out), [`mod@apply`] writes the steps in transactions that refuse to
//! auto-create attributes, [`mod@verify`] reads the result back with the timeline's query shape
//! (context by key, then its items ordered by `createdAt`). Running it again changes nothing:
//! every id is derived or reused, and only what is missing is written.

// The port's error keeps the server's whole envelope by design.
#![allow(clippy::result_large_err)]

pub mod apply;
pub mod plan;
pub mod schema;
pub mod source;
pub mod verify;

use instant_api::{ApiError, AppAuth, InstantApi};
use serde::Serialize;

pub use apply::{apply, ApplyResult};
pub use plan::{plan, Plan};
pub use source::{read, ReadOptions, Source};
pub use verify::{verify, Verify};

/// The stage name recorded in the run manifest.
pub const STAGE: &str = "backfill-conversations";
/// Prefix of default run ids (`conversation-bridge-<ms>`, as the old script).
pub const RUN_ID_PREFIX: &str = "conversation-bridge";

#[derive(Debug, thiserror::Error)]
pub enum ConversationError {
    #[error("tender id {0:?} is not a UUID")]
    InvalidTenderId(String),
    #[error("tender {tender_id}: no award_awards row links it in app {app_id} (unknown tender, or a tender without awards)")]
    NoAwards { tender_id: String, app_id: String },
    #[error("tender {tender_id}: none of the {scanned} whatsapp_messages names it, so there is no conversation to backfill")]
    NoConversation { tender_id: String, scanned: u64 },
    #[error("app {app_id} does not declare what the backfill writes: {}; push the target schema (thread V1 with the esolbay links) first", missing.join(", "))]
    SchemaMissing {
        app_id: String,
        missing: Vec<String>,
    },
    #[error("{what}: {source}")]
    Api { what: String, source: ApiError },
    #[error("{what}: unexpected answer: {detail}")]
    Shape { what: String, detail: String },
}

impl ConversationError {
    pub(crate) fn api(what: impl Into<String>, source: ApiError) -> Self {
        ConversationError::Api {
            what: what.into(),
            source,
        }
    }
}

/// The canonical (lower-case, hyphenated) form of a UUID, or `None`.
pub fn canonical_uuid(text: &str) -> Option<String> {
    let text = text.trim();
    if text.len() != 36 {
        return None;
    }
    uuid::Uuid::parse_str(text)
        .ok()
        .map(|uuid| uuid.hyphenated().to_string())
}

/// `award_<awardId>`: the key of an award's context and thread.
pub fn context_key(award_id: &str) -> String {
    format!("award_{award_id}")
}

/// `uuidv5(MIGRATION_NS, "conversation-context:" + key)`: the id of a context the backfill
/// creates (an existing context with the key keeps its id).
pub fn derived_context_id(key: &str) -> uuid::Uuid {
    uuid::Uuid::new_v5(
        &crate::MIGRATION_NS,
        format!("conversation-context:{key}").as_bytes(),
    )
}

/// `uuidv5(MIGRATION_NS, "whatsapp-item:" + whatsappMessageId)`: the id of the item the
/// backfill creates for a WhatsApp message (the old script reused the message's own id, so one
/// id lived in two namespaces).
pub fn derived_item_id(whatsapp_message_id: &str) -> uuid::Uuid {
    uuid::Uuid::new_v5(
        &crate::MIGRATION_NS,
        format!("whatsapp-item:{whatsapp_message_id}").as_bytes(),
    )
}

/// How one backfill runs.
#[derive(Debug, Clone)]
pub struct Options {
    pub tender_id: String,
    /// Rows per query page and ids per `$in` list.
    pub page_size: usize,
    /// Steps per transaction (an entity's steps are never split).
    pub batch_size: usize,
    /// Plan only: nothing is written and nothing is verified.
    pub dry_run: bool,
}

impl Options {
    pub fn new(tender_id: impl Into<String>) -> Options {
        Options {
            tender_id: tender_id.into(),
            page_size: 500,
            batch_size: 200,
            dry_run: false,
        }
    }
}

/// Everything one run produced.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Outcome {
    pub source: Source,
    pub plan: Plan,
    /// `None` in a dry run.
    pub apply: Option<ApplyResult>,
    /// `None` in a dry run.
    pub verify: Option<Verify>,
}

/// Reads, plans, and unless `dry_run` applies and verifies. A failed transaction is an error
/// (the earlier batches stay applied; running again completes them).
pub fn run(
    api: &dyn InstantApi,
    auth: &AppAuth,
    options: &Options,
    progress: &mut dyn FnMut(&str),
) -> Result<Outcome, ConversationError> {
    let tender_id = canonical_uuid(&options.tender_id)
        .ok_or_else(|| ConversationError::InvalidTenderId(options.tender_id.clone()))?;
    let source = read(
        api,
        auth,
        &tender_id,
        ReadOptions {
            page_size: options.page_size,
        },
        progress,
    )?;
    let plan = plan(&source);
    if options.dry_run {
        return Ok(Outcome {
            source,
            plan,
            apply: None,
            verify: None,
        });
    }
    let applied = apply(api, auth, &plan, options.batch_size)?;
    if let Some(failure) = &applied.failed {
        return Err(ConversationError::api(
            format!(
                "transact steps {}..{} of {}",
                failure.from, failure.to, plan.step_count
            ),
            failure.error.clone(),
        ));
    }
    let verify = verify(api, auth, &plan, options.page_size)?;
    Ok(Outcome {
        source,
        plan,
        apply: Some(applied),
        verify: Some(verify),
    })
}
