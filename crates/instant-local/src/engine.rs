//! [`LocalEngine`]: the `InstantApi` port implemented in-process over a workspace [`Store`].
//!
//! Each call authenticates as the server does for its route (admin token and app id for query
//! and transact; the dashboard rules, which also name a token/app mismatch, for schema, perms
//! and jobs), then runs the module that owns the operation on the store's one connection.

// The port's error keeps the whole server envelope by design.
#![allow(clippy::result_large_err)]

use std::path::Path;
use std::sync::Arc;

use instant_api::{
    ApiError, AppAuth, EphemeralAppRequest, EphemeralAppResponse, IndexingJobResponse,
    IndexingJobsResponse, InstantApi, PermsPullResponse, QueryRequest, SchemaApplyResponse,
    SchemaPlanResponse, SchemaPullResponse, SchemaPushRequest, StepsApplyRequest, TransactRequest,
    TransactResponse,
};

use crate::store::{self, Store, StoreError};
use crate::{query, schema_ops, transact};

/// The embedded engine. Cheap to clone; clones share the workspace.
#[derive(Debug, Clone)]
pub struct LocalEngine {
    store: Arc<Store>,
}

impl LocalEngine {
    /// Opens (creating if needed) the workspace in `dir`.
    pub fn open(dir: &Path) -> Result<LocalEngine, StoreError> {
        Ok(LocalEngine::from_store(Store::open(dir)?))
    }

    /// A private in-memory workspace (tests, rehearsals).
    pub fn in_memory() -> Result<LocalEngine, StoreError> {
        Ok(LocalEngine::from_store(Store::open_in_memory()?))
    }

    pub fn from_store(store: Store) -> LocalEngine {
        LocalEngine {
            store: Arc::new(store),
        }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The workspace's store, shared (for the organisation directory of the same workspace).
    pub fn shared_store(&self) -> Arc<Store> {
        Arc::clone(&self.store)
    }
}

impl InstantApi for LocalEngine {
    fn query(&self, auth: &AppAuth, request: &QueryRequest) -> Result<serde_json::Value, ApiError> {
        let app = self.store.authenticate_admin(auth)?;
        let conn = self.store.conn();
        // One read transaction for the whole query: every statement reads the same snapshot,
        // and the WAL read lock is taken once instead of once per statement (a query reads
        // each entity and link with statements of its own).
        let snapshot = conn.unchecked_transaction().map_err(store::sql_error)?;
        let result = query::query(&snapshot, &app, request);
        snapshot.commit().map_err(store::sql_error)?;
        result
    }

    fn transact(
        &self,
        auth: &AppAuth,
        request: &TransactRequest,
    ) -> Result<TransactResponse, ApiError> {
        let app = self.store.authenticate_admin(auth)?;
        transact::transact(&self.store, &app, request)
    }

    fn schema_pull(&self, auth: &AppAuth) -> Result<SchemaPullResponse, ApiError> {
        let app = self.store.authenticate_dash(auth)?;
        schema_ops::schema_pull(&self.store.conn(), &app)
    }

    fn schema_plan(
        &self,
        auth: &AppAuth,
        request: &SchemaPushRequest,
    ) -> Result<SchemaPlanResponse, ApiError> {
        let app = self.store.authenticate_dash(auth)?;
        schema_ops::schema_plan(&self.store.conn(), &app, request)
    }

    fn schema_push(
        &self,
        auth: &AppAuth,
        request: &SchemaPushRequest,
    ) -> Result<SchemaApplyResponse, ApiError> {
        let app = self.store.authenticate_dash(auth)?;
        schema_ops::schema_push(&mut self.store.conn(), &app, request)
    }

    fn schema_steps_apply(
        &self,
        auth: &AppAuth,
        request: &StepsApplyRequest,
    ) -> Result<SchemaApplyResponse, ApiError> {
        let app = self.store.authenticate_dash(auth)?;
        schema_ops::schema_steps_apply(&mut self.store.conn(), &app, request)
    }

    fn perms_pull(&self, auth: &AppAuth) -> Result<PermsPullResponse, ApiError> {
        let app = self.store.authenticate_dash(auth)?;
        schema_ops::perms_pull(&self.store.conn(), &app)
    }

    fn indexing_job_group(
        &self,
        auth: &AppAuth,
        group_id: &str,
    ) -> Result<IndexingJobsResponse, ApiError> {
        let app = self.store.authenticate_dash(auth)?;
        schema_ops::indexing_job_group(&self.store.conn(), &app, group_id)
    }

    fn indexing_job(&self, auth: &AppAuth, job_id: &str) -> Result<IndexingJobResponse, ApiError> {
        let app = self.store.authenticate_dash(auth)?;
        schema_ops::indexing_job(&self.store.conn(), &app, job_id)
    }

    fn create_ephemeral_app(
        &self,
        request: &EphemeralAppRequest,
    ) -> Result<EphemeralAppResponse, ApiError> {
        schema_ops::create_ephemeral_app(&self.store, request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn calls_authenticate_before_touching_the_app() {
        let engine = LocalEngine::in_memory().unwrap();
        let (app, token) = engine.store().create_app("one", false).unwrap();
        let good = AppAuth::new(&app.id, &token);
        let bad = AppAuth::new(&app.id, uuid::Uuid::new_v4().to_string());
        let request = QueryRequest {
            query: json!({"posts": {}}),
            inference: false,
        };
        assert_eq!(engine.query(&good, &request).unwrap(), json!({"posts": []}));
        assert_eq!(
            engine.query(&bad, &request).unwrap_err().error_type,
            "record-not-found"
        );
        assert_eq!(engine.schema_pull(&bad).unwrap_err().status, 401);
        assert!(engine.perms_pull(&good).is_ok());
    }
}
