//! Writing the plan's steps: sequential transactions of at most `batch_size` steps (an
//! entity's update and its links always share one), with `throw-on-missing-attrs?` so the
//! server never invents an attribute. Every step is an upsert or a link with a fixed id, so a
//! batch retried after a lost answer, or a run repeated after a failure, writes the same rows.

use instant_api::{ApiError, AppAuth, InstantApi, TransactRequest};
use serde::Serialize;
use serde_json::Value;

use super::{ConversationError, Plan};

/// One transaction that went through.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchRecord {
    /// Index of its first step in the plan, and one past its last.
    pub from: usize,
    pub to: usize,
    pub size: usize,
    pub tx_id: i64,
}

/// The transaction that failed (the ones before it stay applied).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchFailure {
    pub from: usize,
    pub to: usize,
    pub size: usize,
    pub status: u16,
    pub error: ApiError,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplyResult {
    pub steps: usize,
    pub steps_sha256: String,
    pub batches: Vec<BatchRecord>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failed: Option<BatchFailure>,
}

/// Packs step groups into batches of at most `batch_size` steps (a larger group goes alone).
pub fn batches(groups: &[Vec<Value>], batch_size: usize) -> Vec<Vec<Value>> {
    let batch_size = batch_size.max(1);
    let mut out: Vec<Vec<Value>> = Vec::new();
    let mut current: Vec<Value> = Vec::new();
    for group in groups {
        if !current.is_empty() && current.len() + group.len() > batch_size {
            out.push(std::mem::take(&mut current));
        }
        current.extend(group.iter().cloned());
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// Applies the plan. Refuses (before any write) when the app's schema lacks what the steps
/// write. A plan without steps makes no request at all.
pub fn apply(
    api: &dyn InstantApi,
    auth: &AppAuth,
    plan: &Plan,
    batch_size: usize,
) -> Result<ApplyResult, ConversationError> {
    if !plan.schema_missing.is_empty() {
        return Err(ConversationError::SchemaMissing {
            app_id: auth.app_id.clone(),
            missing: plan.schema_missing.clone(),
        });
    }
    let mut result = ApplyResult {
        steps: plan.step_count,
        steps_sha256: plan.steps_sha256.clone(),
        batches: Vec::new(),
        failed: None,
    };
    let mut from = 0;
    for steps in batches(&plan.step_groups, batch_size) {
        let size = steps.len();
        let request = TransactRequest {
            steps,
            throw_on_missing_attrs: true,
        };
        match api.transact(auth, &request) {
            Ok(response) => result.batches.push(BatchRecord {
                from,
                to: from + size,
                size,
                tx_id: response.tx_id,
            }),
            Err(error) => {
                result.failed = Some(BatchFailure {
                    from,
                    to: from + size,
                    size,
                    status: error.status,
                    error,
                });
                return Ok(result);
            }
        }
        from += size;
    }
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn groups_are_never_split_across_batches() {
        let groups = vec![
            vec![json!(1), json!(2)],
            vec![json!(3)],
            vec![json!(4), json!(5)],
            vec![json!(6), json!(7), json!(8)],
        ];
        let sizes: Vec<usize> = batches(&groups, 3).iter().map(Vec::len).collect();
        assert_eq!(sizes, [3, 2, 3]);
        let sizes: Vec<usize> = batches(&groups, 1).iter().map(Vec::len).collect();
        assert_eq!(sizes, [2, 1, 2, 3]);
        assert!(batches(&[], 10).is_empty());
    }
}
