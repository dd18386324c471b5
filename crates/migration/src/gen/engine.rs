//! Writing generated orgs into an InstantDB server through the `InstantApi` port (the
//! embedded engine of a workspace, or any server): one app per org with its as-deployed schema
//! pushed, rows as `update` steps, links as `link` steps written only once every row of the
//! chunk exists, in transactions of about `batch_size` steps.
//!
//! The transactions are sent by a writer thread of their own while the next rows are being
//! generated (a queue of `QUEUED_BATCHES` batches between the two), in the order they were
//! made: the data written is the same as sending them inline, and making the rows no longer
//! waits for the server.

use std::sync::mpsc::{sync_channel, SyncSender};
use std::thread::{Scope, ScopedJoinHandle};

use instant_api::{AppAuth, EphemeralAppRequest, InstantApi, SchemaPushRequest, TransactRequest};
use serde_json::{json, Map, Value};

use super::ns::Ns;
use super::schema::is_link_label;
use super::{GenError, OrgPlan};

/// An organisation to record in the directory once its app is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrgRegistration {
    pub org_id: String,
    pub name: String,
    pub slug: String,
    /// `None` for an org without credentials (no app was created).
    pub app_id: Option<String>,
    /// `present` or `missing`.
    pub credentials: &'static str,
}

/// The server and the directory the fleet is written to.
pub struct EngineTarget<'a> {
    pub api: &'a dyn InstantApi,
    /// Records an org in the directory (the workspace's `orgs` table); errors as text.
    pub register: &'a mut dyn FnMut(OrgRegistration) -> Result<(), String>,
    /// Steps per transaction (`threadmig gen` defaults to 2000).
    pub batch_size: usize,
}

/// Batches made but not yet sent: bounds the memory the writer thread can fall behind by.
const QUEUED_BATCHES: usize = 2;

/// What the writer thread reports when it stops: transactions and steps written, or the first
/// failure (after which it sends nothing more).
type Written = Result<(u64, u64), GenError>;

pub struct EngineWriter<'scope> {
    auth: AppAuth,
    org: String,
    steps: Vec<Value>,
    links: Vec<Value>,
    batch_size: usize,
    /// `None` once the writer thread has been joined.
    sender: Option<SyncSender<Vec<Value>>>,
    worker: Option<ScopedJoinHandle<'scope, Written>>,
}

impl<'scope> EngineWriter<'scope> {
    /// Creates the org's app, pushes its schema and starts the writer thread in `scope`.
    pub fn create<'env>(
        target: &mut EngineTarget<'env>,
        plan: &OrgPlan,
        schema: &instant_schema::Schema,
        scope: &'scope Scope<'scope, 'env>,
    ) -> Result<EngineWriter<'scope>, GenError> {
        let fail = |message: String| GenError::Target {
            org: plan.org_id.clone(),
            message,
        };
        let created = target
            .api
            .create_ephemeral_app(&EphemeralAppRequest {
                title: plan.name.clone(),
                schema: None,
                rules: None,
            })
            .map_err(|error| fail(format!("creating the app: {error}")))?;
        let auth = created.app.auth();
        target
            .api
            .schema_push(
                &auth,
                &SchemaPushRequest {
                    schema: schema.to_dsl_json(),
                    // Apps whose data is clean were deployed with typed attributes (as the
                    // packages' CLI pushes them); the `standard` app carries the injected
                    // wrong-type cases, which only an untyped app can hold.
                    check_types: plan.role != super::OrgRole::Standard,
                    supports_background_updates: false,
                },
            )
            .map_err(|error| fail(format!("pushing the legacy schema: {error}")))?;
        let (sender, batches) = sync_channel::<Vec<Value>>(QUEUED_BATCHES);
        let api = target.api;
        let (org, writer_auth) = (plan.org_id.clone(), auth.clone());
        let worker = scope.spawn(move || -> Written {
            let (mut count, mut written) = (0u64, 0u64);
            for steps in batches {
                let size = steps.len() as u64;
                api.transact(
                    &writer_auth,
                    &TransactRequest {
                        steps,
                        throw_on_missing_attrs: false,
                    },
                )
                .map_err(|error| GenError::Target {
                    org: org.clone(),
                    message: format!("transaction {} failed: {error}", count + 1),
                })?;
                count += 1;
                written += size;
            }
            Ok((count, written))
        });
        Ok(EngineWriter {
            auth,
            org: plan.org_id.clone(),
            steps: Vec::new(),
            links: Vec::new(),
            batch_size: target.batch_size.max(1),
            sender: Some(sender),
            worker: Some(worker),
        })
    }

    pub fn app_id(&self) -> &str {
        &self.auth.app_id
    }

    pub fn row(&mut self, ns: Ns, mut row: Map<String, Value>) -> Result<(), GenError> {
        let id = match row.remove("id") {
            Some(Value::String(id)) => id,
            _ => {
                return Err(GenError::Invalid(format!(
                    "{}: a generated row has no id",
                    ns.name()
                )))
            }
        };
        let mut links = Map::new();
        let labels: Vec<String> = row
            .keys()
            .filter(|label| is_link_label(ns.name(), label))
            .cloned()
            .collect();
        for label in labels {
            let Some(Value::Array(targets)) = row.remove(&label) else {
                continue;
            };
            let ids: Vec<Value> = targets
                .into_iter()
                .filter_map(|target| target.get("id").cloned())
                .collect();
            match ids.len() {
                0 => {}
                1 if label != "whatsappMessages" => {
                    links.insert(label, ids.into_iter().next().unwrap_or(Value::Null));
                }
                _ => {
                    links.insert(label, Value::Array(ids));
                }
            }
        }
        self.steps
            .push(json!(["update", ns.name(), id, Value::Object(row)]));
        if !links.is_empty() {
            self.links
                .push(json!(["link", ns.name(), id, Value::Object(links)]));
        }
        if self.steps.len() >= self.batch_size {
            self.flush(false)?;
        }
        Ok(())
    }

    /// Every row of the chunk is queued: its links may follow.
    pub fn end_chunk(&mut self) -> Result<(), GenError> {
        self.steps.append(&mut self.links);
        if self.steps.len() >= self.batch_size {
            self.flush(false)?;
        }
        Ok(())
    }

    /// Hands the full batches (all of the queue with `all`) to the writer thread. When the
    /// thread has stopped on a failed transaction, that failure is returned.
    fn flush(&mut self, all: bool) -> Result<(), GenError> {
        while self.steps.len() >= self.batch_size || (all && !self.steps.is_empty()) {
            let take = self.steps.len().min(self.batch_size);
            let batch: Vec<Value> = self.steps.drain(..take).collect();
            let sent = match &self.sender {
                Some(sender) => sender.send(batch).is_ok(),
                None => false,
            };
            if !sent {
                // The thread only stops early on a failure, which joining it returns.
                return self.join().map(|_| ());
            }
        }
        Ok(())
    }

    /// Closes the queue and waits for the writer thread: what it wrote, or its failure.
    fn join(&mut self) -> Written {
        self.sender = None;
        let failed = |message: &str| GenError::Target {
            org: self.org.clone(),
            message: message.to_string(),
        };
        let Some(worker) = self.worker.take() else {
            return Err(failed("the workspace writer was already stopped"));
        };
        worker
            .join()
            .unwrap_or_else(|_| Err(failed("the workspace writer thread panicked")))
    }

    /// Writes what is left; returns the app id, transactions and steps written.
    pub fn finish(mut self) -> Result<(String, u64, u64), GenError> {
        self.steps.append(&mut self.links);
        self.flush(true)?;
        let (batches, written) = self.join()?;
        Ok((self.auth.app_id.clone(), batches, written))
    }
}
