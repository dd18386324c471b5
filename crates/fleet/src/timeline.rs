//! The `conversation_history_orphan` check: an award's WhatsApp conversation that the award
//! timeline cannot show, because no thread context `award_<awardId>` holds its messages as
//! items. The story -> thread data migration does not create those timelines (the messages
//! were never story events); `threadmig backfill-conversations` does. Until it has run, an
//! org's migration is applied but its timeline is not verified.
//!
//! Detection reuses the backfill's own planner in dry-run mode, tender by tender, so the check
//! and the repair agree by construction: an orphan is exactly an award for which the backfill
//! would create items.

use instant_api::{AppAuth, InstantApi, QueryRequest};
use migration::conversation::{self, Options};
use serde::Serialize;
use serde_json::{json, Value};

/// One tender whose awards' conversations have no timeline yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TimelineOrphan {
    pub tender_id: String,
    pub award_ids: Vec<String>,
    /// Items the backfill would create.
    pub items_missing: usize,
}

impl TimelineOrphan {
    /// The one command that repairs it.
    pub fn action(&self, org_id: &str) -> String {
        format!(
            "threadmig backfill-conversations --org {org_id} --tender-id {}",
            self.tender_id
        )
    }
}

/// Every tender of the app with an award conversation missing from the timeline.
pub fn find_orphans(
    api: &dyn InstantApi,
    auth: &AppAuth,
    page_size: usize,
) -> Result<Vec<TimelineOrphan>, String> {
    let page_size = page_size.max(1);
    let mut orphans = Vec::new();
    let mut offset = 0usize;
    loop {
        let query = json!({"tender_tenders": {"$": {"limit": page_size, "offset": offset,
                                                    "fields": ["id"]}}});
        let result = api
            .query(
                auth,
                &QueryRequest {
                    query,
                    inference: false,
                },
            )
            .map_err(|error| format!("listing tenders: {error}"))?;
        let ids: Vec<String> = result
            .get("tender_tenders")
            .and_then(Value::as_array)
            .map(|rows| {
                rows.iter()
                    .filter_map(|row| row.get("id").and_then(Value::as_str))
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        let count = ids.len();
        for tender_id in ids {
            let mut options = Options::new(&tender_id);
            options.dry_run = true;
            options.page_size = page_size;
            let outcome = match conversation::run(api, auth, &options, &mut |_| {}) {
                Ok(outcome) => outcome,
                // A tender without awards, or whose awards have no conversation, has no
                // timeline to show: nothing is missing.
                Err(
                    conversation::ConversationError::NoAwards { .. }
                    | conversation::ConversationError::NoConversation { .. },
                ) => continue,
                Err(error) => return Err(error.to_string()),
            };
            let awards: Vec<&conversation::plan::AwardPlan> = outcome
                .plan
                .awards
                .iter()
                .filter(|award| award.items_created > 0)
                .collect();
            if !awards.is_empty() {
                orphans.push(TimelineOrphan {
                    tender_id: tender_id.clone(),
                    award_ids: awards.iter().map(|award| award.award_id.clone()).collect(),
                    items_missing: awards.iter().map(|award| award.items_created).sum(),
                });
            }
        }
        if count < page_size {
            break;
        }
        offset += count;
    }
    orphans.sort_by(|a, b| a.tender_id.cmp(&b.tender_id));
    Ok(orphans)
}
