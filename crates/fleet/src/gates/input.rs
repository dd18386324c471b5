//! The three reports the gates read, loaded tolerantly: a problem with a file is recorded as
//! the input's state (and turns its gates into `missing_input`), never an error that stops the
//! other gates from being judged.

use std::fmt;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

/// Which report a gate reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum InputKind {
    /// `threadmig scan`: `artifacts/preflight/scan.json`.
    Preflight,
    /// `threadmig model-plan`: `artifacts/reports/story-thread-model-plan.json`.
    ModelPlan,
    /// `threadmig matrix`: `artifacts/reports/schema-plan-org-matrix.json`.
    Matrix,
}

impl InputKind {
    pub const ALL: [InputKind; 3] = [
        InputKind::Preflight,
        InputKind::ModelPlan,
        InputKind::Matrix,
    ];

    /// Key in the report's `inputStatus` and in each gate's `input`.
    pub fn key(self) -> &'static str {
        match self {
            InputKind::Preflight => "preflight",
            InputKind::ModelPlan => "modelPlan",
            InputKind::Matrix => "matrix",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            InputKind::Preflight => "preflight scan",
            InputKind::ModelPlan => "model plan",
            InputKind::Matrix => "org matrix",
        }
    }

    /// Path under the artifacts root, by the old scripts' names.
    pub fn default_relative_path(self) -> &'static str {
        match self {
            InputKind::Preflight => "preflight/scan.json",
            InputKind::ModelPlan => "reports/story-thread-model-plan.json",
            InputKind::Matrix => "reports/schema-plan-org-matrix.json",
        }
    }

    /// What to run when the input is missing.
    pub fn remedy(self) -> &'static str {
        match self {
            InputKind::Preflight => {
                "run `threadmig scan --repo <app repository>` (writes artifacts/preflight/scan.json), then re-run the gates"
            }
            InputKind::ModelPlan => {
                "run `threadmig model-plan --repo <app repository>` (writes artifacts/reports/story-thread-model-plan.json), then re-run the gates"
            }
            InputKind::Matrix => {
                "run `threadmig matrix` (writes artifacts/reports/schema-plan-org-matrix.json), then re-run the gates"
            }
        }
    }
}

/// Why an input could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InputProblem {
    NotFound,
    Unreadable(String),
    NotJson(String),
    NotAnObject,
}

impl fmt::Display for InputProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InputProblem::NotFound => write!(f, "not found"),
            InputProblem::Unreadable(error) => write!(f, "unreadable ({error})"),
            InputProblem::NotJson(error) => write!(f, "not valid JSON ({error})"),
            InputProblem::NotAnObject => write!(f, "not a JSON object"),
        }
    }
}

impl InputProblem {
    fn code(&self) -> &'static str {
        match self {
            InputProblem::NotFound => "not_found",
            InputProblem::Unreadable(_) => "unreadable",
            InputProblem::NotJson(_) => "invalid_json",
            InputProblem::NotAnObject => "not_an_object",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum InputState {
    Loaded { value: Value, sha256: String },
    Missing(InputProblem),
}

/// One input report: where it was looked for and what was found.
#[derive(Debug, Clone, PartialEq)]
pub struct GateInput {
    pub kind: InputKind,
    pub path: PathBuf,
    pub state: InputState,
}

impl GateInput {
    /// Reads and parses `path` (a UTF-8 byte-order mark is tolerated).
    pub fn load(kind: InputKind, path: &Path) -> GateInput {
        let state = match std::fs::read(path) {
            Ok(bytes) => Self::parse(&bytes),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                InputState::Missing(InputProblem::NotFound)
            }
            Err(error) => InputState::Missing(InputProblem::Unreadable(error.to_string())),
        };
        GateInput {
            kind,
            path: path.to_path_buf(),
            state,
        }
    }

    /// An input given as a document already in memory (the pipeline's own reports).
    pub fn from_bytes(kind: InputKind, path: &Path, bytes: &[u8]) -> GateInput {
        GateInput {
            kind,
            path: path.to_path_buf(),
            state: Self::parse(bytes),
        }
    }

    fn parse(bytes: &[u8]) -> InputState {
        let sha256 = migration::evidence::sha256_hex(bytes);
        let text = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
        match serde_json::from_slice::<Value>(text) {
            Ok(value @ Value::Object(_)) => InputState::Loaded { value, sha256 },
            Ok(_) => InputState::Missing(InputProblem::NotAnObject),
            Err(error) => InputState::Missing(InputProblem::NotJson(error.to_string())),
        }
    }

    pub fn is_loaded(&self) -> bool {
        matches!(self.state, InputState::Loaded { .. })
    }

    pub(super) fn status_json(&self) -> Value {
        match &self.state {
            InputState::Loaded { sha256, .. } => json!({"status": "loaded", "sha256": sha256}),
            InputState::Missing(problem) => json!({
                "status": problem.code(),
                "error": problem.to_string(),
            }),
        }
    }
}

/// The three inputs of one evaluation.
#[derive(Debug, Clone, PartialEq)]
pub struct GateInputs {
    pub preflight: GateInput,
    pub model_plan: GateInput,
    pub matrix: GateInput,
}

impl GateInputs {
    /// Loads the three files.
    pub fn load(preflight: &Path, model_plan: &Path, matrix: &Path) -> GateInputs {
        GateInputs {
            preflight: GateInput::load(InputKind::Preflight, preflight),
            model_plan: GateInput::load(InputKind::ModelPlan, model_plan),
            matrix: GateInput::load(InputKind::Matrix, matrix),
        }
    }

    /// Loads the three files from their default places under `artifacts`.
    pub fn load_defaults(artifacts: &Path) -> GateInputs {
        GateInputs::load(
            &artifacts.join(InputKind::Preflight.default_relative_path()),
            &artifacts.join(InputKind::ModelPlan.default_relative_path()),
            &artifacts.join(InputKind::Matrix.default_relative_path()),
        )
    }

    pub fn get(&self, kind: InputKind) -> &GateInput {
        match kind {
            InputKind::Preflight => &self.preflight,
            InputKind::ModelPlan => &self.model_plan,
            InputKind::Matrix => &self.matrix,
        }
    }
}
