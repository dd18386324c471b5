//! The workspace's organisation directory: the `OrgDirectory` port over the `orgs` table of a
//! [`Store`], for the embedded default and for tests and generated fleets.
//!
//! It lives here, not in `org-directory`, because the port must know nothing of Instant while
//! this adapter needs the engine's apps and their admin tokens: the engine depends on the port,
//! never the other way round. Code above the port sees only `OrgDirectory` and cannot tell it
//! from the Clerk adapter.
//!
//! An org's `credentials` column stands for what its Clerk metadata would hold: `present`
//! serves the admin token of the org's app, `missing` and `malformed` give the typed outcomes
//! that carry `missing_instant_credentials`.

use std::sync::Arc;

use instant_api::ApiError;
use org_directory::{
    AppCredentials, CredentialsOutcome, DirectoryError, Org, OrgDirectory, ResolvedOrg, Secret,
};

use crate::engine::LocalEngine;
use crate::store::{OrgCredentials, OrgRecord, Store};

/// The organisation directory of a workspace. Cheap to clone; clones share the store.
#[derive(Debug, Clone)]
pub struct LocalDirectory {
    store: Arc<Store>,
}

impl LocalDirectory {
    pub fn new(store: Arc<Store>) -> LocalDirectory {
        LocalDirectory { store }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }
}

impl OrgDirectory for LocalDirectory {
    fn list_orgs(&self) -> Result<Vec<Org>, DirectoryError> {
        list_orgs(&self.store)
    }
    fn get_org(&self, org_id: &str) -> Result<Org, DirectoryError> {
        Ok(org(&self.store, org_id)?.0)
    }
    fn credentials(&self, org_id: &str) -> Result<CredentialsOutcome, DirectoryError> {
        Ok(resolve(&self.store, org_id)?.credentials)
    }
    fn resolve(&self, org_id: &str) -> Result<ResolvedOrg, DirectoryError> {
        resolve(&self.store, org_id)
    }
}

/// The engine is its own directory too, so an embedded run needs one handle for both ports.
impl OrgDirectory for LocalEngine {
    fn list_orgs(&self) -> Result<Vec<Org>, DirectoryError> {
        list_orgs(self.store())
    }
    fn get_org(&self, org_id: &str) -> Result<Org, DirectoryError> {
        Ok(org(self.store(), org_id)?.0)
    }
    fn credentials(&self, org_id: &str) -> Result<CredentialsOutcome, DirectoryError> {
        Ok(resolve(self.store(), org_id)?.credentials)
    }
    fn resolve(&self, org_id: &str) -> Result<ResolvedOrg, DirectoryError> {
        resolve(self.store(), org_id)
    }
}

fn storage_error(error: ApiError) -> DirectoryError {
    DirectoryError::Storage {
        message: error.message,
    }
}

fn to_org(record: &OrgRecord) -> Org {
    Org {
        id: record.org_id.clone(),
        name: record.name.clone(),
        slug: record.slug.clone(),
    }
}

fn list_orgs(store: &Store) -> Result<Vec<Org>, DirectoryError> {
    Ok(store
        .orgs()
        .map_err(storage_error)?
        .iter()
        .map(to_org)
        .collect())
}

fn org(store: &Store, org_id: &str) -> Result<(Org, OrgRecord), DirectoryError> {
    match store.org(org_id.trim()).map_err(storage_error)? {
        Some(record) => Ok((to_org(&record), record)),
        None => Err(DirectoryError::OrgNotFound {
            org_id: org_id.trim().to_string(),
        }),
    }
}

fn resolve(store: &Store, org_id: &str) -> Result<ResolvedOrg, DirectoryError> {
    let (org, record) = org(store, org_id)?;
    let credentials = match (record.credentials, &record.app_id) {
        (OrgCredentials::Missing, _) => CredentialsOutcome::Missing {
            reason: "the workspace records no Instant credentials for this organization".into(),
        },
        (OrgCredentials::Malformed, _) => CredentialsOutcome::Malformed {
            reason: "the workspace records malformed Instant credentials for this organization"
                .into(),
        },
        (OrgCredentials::Present, None) => CredentialsOutcome::Missing {
            reason: "the organization has no app in the workspace".into(),
        },
        (OrgCredentials::Present, Some(app_id)) => {
            match store
                .org_admin_token(&record.org_id)
                .map_err(storage_error)?
            {
                Some(token) => CredentialsOutcome::Present(AppCredentials {
                    app_id: app_id.clone(),
                    admin_token: Secret::new(token),
                }),
                None => CredentialsOutcome::Missing {
                    reason: format!("app {app_id} is not in the workspace"),
                },
            }
        }
    };
    Ok(ResolvedOrg { org, credentials })
}

#[cfg(test)]
mod tests {
    use super::*;
    use org_directory::IssueCode;

    fn record(org_id: &str, app_id: Option<&str>, credentials: OrgCredentials) -> OrgRecord {
        OrgRecord {
            org_id: org_id.into(),
            name: format!("Name {org_id}"),
            slug: format!("slug-{org_id}"),
            app_id: app_id.map(str::to_string),
            credentials,
        }
    }

    #[test]
    fn workspace_orgs_resolve_to_typed_outcomes() {
        let store = Arc::new(Store::open_in_memory().unwrap());
        let (app, token) = store.create_app("acme", false).unwrap();
        let (other_app, _) = store.create_app("beta", false).unwrap();
        store
            .upsert_org(&record("org_b", Some(&app.id), OrgCredentials::Present))
            .unwrap();
        store
            .upsert_org(&record(
                "org_a",
                Some(&other_app.id),
                OrgCredentials::Missing,
            ))
            .unwrap();
        store
            .upsert_org(&record("org_c", None, OrgCredentials::Malformed))
            .unwrap();
        store
            .upsert_org(&record("org_d", None, OrgCredentials::Present))
            .unwrap();
        let directory = LocalDirectory::new(store.clone());

        let ids: Vec<String> = directory
            .list_orgs()
            .unwrap()
            .into_iter()
            .map(|org| org.id)
            .collect();
        assert_eq!(ids, ["org_a", "org_b", "org_c", "org_d"]);

        let resolved = directory.resolve("org_b").unwrap();
        assert_eq!(
            resolved.org,
            Org {
                id: "org_b".into(),
                name: "Name org_b".into(),
                slug: "slug-org_b".into()
            }
        );
        let credentials = resolved.credentials.present().unwrap();
        assert_eq!(credentials.app_id, app.id);
        assert_eq!(credentials.admin_token.expose(), token);
        assert!(!format!("{resolved:?}").contains(&token));

        // A `missing` org does not leak the token of the app it is linked to.
        for (org_id, kind) in [
            ("org_a", "missing"),
            ("org_c", "malformed"),
            ("org_d", "missing"),
        ] {
            let outcome = directory.credentials(org_id).unwrap();
            assert_eq!(
                outcome.issue_code(),
                Some(IssueCode::MissingInstantCredentials)
            );
            let got = match outcome {
                CredentialsOutcome::Missing { .. } => "missing",
                CredentialsOutcome::Malformed { .. } => "malformed",
                CredentialsOutcome::Present(_) => "present",
            };
            assert_eq!(got, kind, "{org_id}");
        }

        assert_eq!(
            directory.get_org("org_zzz").unwrap_err(),
            DirectoryError::OrgNotFound {
                org_id: "org_zzz".into()
            }
        );
        assert!(matches!(
            directory.credentials("org_zzz"),
            Err(DirectoryError::OrgNotFound { .. })
        ));
    }

    #[test]
    fn upserts_replace_and_refuse_unknown_apps() {
        let store = Store::open_in_memory().unwrap();
        let (app, _) = store.create_app("acme", false).unwrap();
        store
            .upsert_org(&record("org_1", None, OrgCredentials::Missing))
            .unwrap();
        let mut updated = record("org_1", Some(&app.id), OrgCredentials::Present);
        updated.name = "Renamed".into();
        store.upsert_org(&updated).unwrap();
        assert_eq!(store.orgs().unwrap(), vec![updated.clone()]);
        assert_eq!(store.org("org_1").unwrap(), Some(updated));
        assert_eq!(store.org("org_2").unwrap(), None);

        let unknown_app = store
            .upsert_org(&record(
                "org_2",
                Some("00000000-0000-0000-0000-000000000000"),
                OrgCredentials::Present,
            ))
            .unwrap_err();
        assert_eq!(unknown_app.message, "Record not found: app");
        assert_eq!(store.org("org_2").unwrap(), None);
    }

    #[test]
    fn the_engine_is_a_directory_of_its_workspace() {
        let engine = LocalEngine::in_memory().unwrap();
        let (app, _) = engine.store().create_app("acme", false).unwrap();
        engine
            .store()
            .upsert_org(&record("org_e", Some(&app.id), OrgCredentials::Present))
            .unwrap();
        let directory: &dyn OrgDirectory = &engine;
        assert_eq!(directory.list_orgs().unwrap().len(), 1);
        assert_eq!(
            directory
                .credentials("org_e")
                .unwrap()
                .present()
                .unwrap()
                .app_id,
            app.id
        );
    }
}
