//! From [`ConnectArgs`] to a port: the embedded workspace's engine (in process, or over HTTP
//! when `--instant-api-uri` is given) or a real InstantDB server, and the organisation
//! directory that goes with it. The embedded default is chosen explicitly with `--workspace`;
//! a missing secret never falls back to it.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use instant_api::http::{HttpInstantApi, ResilienceConfig};
use instant_api::{AppAuth, InstantApi};
use instant_local::directory::LocalDirectory;
use instant_local::engine::LocalEngine;
use org_directory::{ClerkDirectory, CredentialsOutcome, OrgDirectory};

use crate::cli::{ConnectArgs, InstantHttpArgs};

/// Where the Instant API of a command lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    /// The workspace's engine, in this process.
    Embedded { workspace: PathBuf },
    /// An InstantDB server (or `threadmig serve`) over HTTP.
    Http { base_url: String },
}

/// The ports a command works through.
#[derive(Clone)]
pub struct Connection {
    pub api: Arc<dyn InstantApi>,
    /// `None` when neither a workspace nor Clerk is configured (explicit `--app-id` use).
    pub directory: Option<Arc<dyn OrgDirectory>>,
    pub backend: Backend,
}

/// One app, resolved: its credentials and the organisation it belongs to.
#[derive(Clone)]
pub struct ResolvedApp {
    pub auth: AppAuth,
    pub org_id: Option<String>,
}

pub fn resilience(http: &InstantHttpArgs) -> ResilienceConfig {
    ResilienceConfig {
        timeout: Duration::from_secs(http.http_timeout_secs),
        max_retries: http.http_max_retries,
        max_concurrency: usize::try_from(http.http_max_concurrency).unwrap_or(usize::MAX),
        max_requests_per_second: (http.http_max_rps > 0.0).then_some(http.http_max_rps),
        ..ResilienceConfig::default()
    }
}

/// Opens the ports named by `args`. The Clerk directory is only built when `need_directory`
/// and no workspace is given (so commands that take `--app-id` + token file need no secret).
pub fn connect(args: &ConnectArgs, need_directory: bool) -> anyhow::Result<Connection> {
    let (engine, directory): (Option<LocalEngine>, Option<Arc<dyn OrgDirectory>>) =
        match &args.workspace {
            Some(dir) => {
                let engine = LocalEngine::open(dir)
                    .map_err(|error| anyhow::anyhow!("workspace {}: {error}", dir.display()))?;
                let directory = LocalDirectory::new(engine.shared_store());
                (Some(engine), Some(Arc::new(directory)))
            }
            None if need_directory || (args.org.is_some() && args.admin_token_file.is_none()) => {
                let clerk = ClerkDirectory::from_env(&args.clerk_api_uri)?;
                (None, Some(Arc::new(clerk)))
            }
            None => (None, None),
        };
    let (api, backend): (Arc<dyn InstantApi>, Backend) =
        match (&engine, &args.http.instant_api_uri, &args.workspace) {
            (Some(engine), None, Some(dir)) => (
                Arc::new(engine.clone()),
                Backend::Embedded {
                    workspace: dir.clone(),
                },
            ),
            _ => {
                let base_url = args.http.api_uri().to_string();
                let api = HttpInstantApi::new(&base_url, resilience(&args.http))
                    .map_err(|error| anyhow::anyhow!("--instant-api-uri {base_url}: {error}"))?;
                (Arc::new(api), Backend::Http { base_url })
            }
        };
    Ok(Connection {
        api,
        directory,
        backend,
    })
}

impl Connection {
    /// The app of `args`: `--admin-token-file` (with `--app-id`), else `--org`'s credentials
    /// from the directory.
    pub fn resolve_app(&self, args: &ConnectArgs) -> anyhow::Result<ResolvedApp> {
        if let Some(path) = &args.admin_token_file {
            let Some(app_id) = &args.app_id else {
                bail!("--admin-token-file needs --app-id (the app the token belongs to)");
            };
            let token = read_token(path)?;
            return Ok(ResolvedApp {
                auth: AppAuth::new(app_id, token),
                org_id: args.org.clone(),
            });
        }
        let Some(org) = &args.org else {
            bail!(
                "which app? give --org ORG (credentials from the organisation directory), or \
                 --app-id APP with --admin-token-file FILE"
            );
        };
        let auth = self.org_auth(org)?;
        if let Some(app_id) = &args.app_id {
            if &auth.app_id != app_id {
                bail!(
                    "organisation {org} owns app {}, not --app-id {app_id}",
                    auth.app_id
                );
            }
        }
        Ok(ResolvedApp {
            auth,
            org_id: Some(org.clone()),
        })
    }

    /// `org`'s app credentials from the directory, or one clear error naming the org and the
    /// issue code (`missing_instant_credentials`, …).
    pub fn org_auth(&self, org: &str) -> anyhow::Result<AppAuth> {
        let Some(directory) = &self.directory else {
            bail!("no organisation directory: give --workspace DIR, or set CLERK_SECRET_KEY");
        };
        match directory
            .credentials(org)
            .with_context(|| format!("organisation {org}"))?
        {
            CredentialsOutcome::Present(credentials) => Ok(AppAuth::new(
                &credentials.app_id,
                credentials.admin_token.expose(),
            )),
            outcome => bail!(
                "organisation {org} has no usable Instant credentials ({}): {}",
                outcome.issue_code().map(|code| code.as_str()).unwrap_or(""),
                outcome.reason().unwrap_or("")
            ),
        }
    }
}

/// The token from a file or standard input (`-`), surrounding whitespace dropped.
pub fn read_token(path: &Path) -> anyhow::Result<String> {
    let text = if path == Path::new("-") {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("reading the admin token from standard input")?;
        text
    } else {
        std::fs::read_to_string(path)
            .with_context(|| format!("{}: cannot read the admin token file", path.display()))?
    };
    let token = text.trim();
    if token.is_empty() {
        bail!("{}: the admin token is empty", path.display());
    }
    if token.contains(char::is_whitespace) {
        bail!("the admin token holds whitespace; the file must contain only the token");
    }
    Ok(token.to_string())
}
