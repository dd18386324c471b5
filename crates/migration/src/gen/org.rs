//! One organisation's legacy data, generated context by context (a chunk: the context, its
//! events, executions, steps, parts and WhatsApp rows), so memory never grows with the org.

use serde_json::{json, Map, Value};

use super::cases::{CaseKind, Rates};
use super::ns::Ns;
use super::rng::Rng;
use super::text::{Content, ContentMode, Corpus, LONE_SURROGATE_MARK};
use super::time::{iso_ms, DAY, HOUR, MINUTE, SECOND};
use super::{CaseRecord, GenError, OrgPlan, OrgRole};

/// Where generated rows and cases go.
pub trait Emit {
    /// One row in the admin-query shape (`id` first, attributes, then links as `[{id}]`).
    fn row(&mut self, ns: Ns, row: Map<String, Value>) -> Result<(), GenError>;
    fn case(&mut self, case: CaseRecord) -> Result<(), GenError>;
    /// Every row a later link may name has been emitted: a writer may now write links.
    fn end_chunk(&mut self) -> Result<(), GenError>;
}

/// How one org is generated.
#[derive(Debug, Clone)]
pub struct OrgSettings {
    pub rates: Rates,
    /// Force each enabled case at its first opportunity (guarantees ≥ 1 per case).
    pub fixtures: bool,
    pub content: ContentMode,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum ContextKind {
    Web,
    Award,
    Structure,
    Keyless,
}

fn link(id: &str) -> Value {
    json!([{ "id": id }])
}

fn empty_link() -> Value {
    Value::Array(Vec::new())
}

/// Builds a row: `id`, then attributes, then links, in insertion order.
struct RowB {
    map: Map<String, Value>,
}

impl RowB {
    fn new(id: &str) -> RowB {
        let mut map = Map::new();
        map.insert("id".into(), Value::String(id.to_string()));
        RowB { map }
    }
    fn set(&mut self, key: &str, value: Value) -> &mut Self {
        self.map.insert(key.to_string(), value);
        self
    }
    fn finish(self) -> Map<String, Value> {
        self.map
    }
}

/// Case draws for one row group.
pub struct OrgGen<'a> {
    rng: Rng,
    settings: &'a OrgSettings,
    corpus: Corpus,
    out: &'a mut dyn Emit,
    missing: Vec<bool>,
    role: OrgRole,
    org_start: i64,
    target_events: u64,
    events: u64,
    contexts_made: u64,
    tenders: Vec<String>,
    organizations_row: Option<String>,
    pending_keyless: Option<String>,
    last_key: Option<String>,
}

struct Turn {
    exec_id: String,
    trigger_id: Option<String>,
}

impl<'a> OrgGen<'a> {
    pub fn new(plan: &OrgPlan, settings: &'a OrgSettings, out: &'a mut dyn Emit) -> OrgGen<'a> {
        let mut rng = Rng::new(plan.seed);
        let corpus = Corpus::new(&mut rng);
        let org_start = super::time::BASE_TIME_MS + rng.below(90) as i64 * DAY;
        OrgGen {
            rng,
            settings,
            corpus,
            out,
            missing: vec![true; CaseKind::ALL.len()],
            role: plan.role,
            org_start,
            target_events: plan.target_events,
            events: 0,
            contexts_made: 0,
            tenders: Vec::new(),
            organizations_row: None,
            pending_keyless: None,
            last_key: None,
        }
    }

    fn rate(&self, kind: CaseKind) -> f64 {
        self.settings.rates.get(kind)
    }

    /// At most one case of `candidates` for a row: a still-missing enabled case first (when
    /// fixtures are on), else each by its rate.
    fn draw(&mut self, candidates: &[CaseKind]) -> Option<CaseKind> {
        if self.settings.fixtures {
            for kind in candidates {
                if self.missing[*kind as usize] && self.rate(*kind) > 0.0 {
                    return Some(*kind);
                }
            }
        }
        for kind in candidates {
            let rate = self.rate(*kind);
            if self.rng.chance(rate) {
                return Some(*kind);
            }
        }
        None
    }

    fn record(
        &mut self,
        kind: CaseKind,
        ns: Ns,
        ids: Vec<String>,
        detail: Value,
    ) -> Result<(), GenError> {
        self.missing[kind as usize] = false;
        self.out.case(CaseRecord {
            kind,
            namespace: ns.name(),
            ids,
            detail,
        })
    }

    fn content(&self) -> Content<'_> {
        Content {
            corpus: &self.corpus,
            mode: self.settings.content,
        }
    }

    fn text(&mut self) -> String {
        let mut rng = self.rng.clone();
        let text = self.content().text(&mut rng);
        self.rng = rng;
        text
    }

    fn uuid(&mut self) -> String {
        self.rng.uuid()
    }

    /// Generates the whole org.
    pub fn run(mut self) -> Result<(), GenError> {
        for n in 0..3 {
            let id = self.uuid();
            let created = self.org_start + n * DAY;
            let mut row = RowB::new(&id);
            row.set("title", json!(format!("Licitación {}", self.rng.hex(6))))
                .set("createdAt", json!(iso_ms(created)));
            self.out.row(Ns::TenderTenders, row.finish())?;
            self.tenders.push(id);
        }
        self.out.end_chunk()?;
        match self.role {
            OrgRole::ConversationOrphan => self.conversation_orphan()?,
            OrgRole::SchemaConflict => self.schema_conflict()?,
            _ => {}
        }
        while self.events < self.target_events.max(1) {
            self.context()?;
            self.out.end_chunk()?;
        }
        self.leftovers()?;
        self.out.end_chunk()
    }

    fn leftovers(&mut self) -> Result<(), GenError> {
        if self.draw(&[CaseKind::LeftoverG1Rows]).is_some() {
            let mut ids = Vec::new();
            for n in 0..2 {
                let id = self.uuid();
                let created = self.org_start - 120 * DAY + n * HOUR;
                let mut row = RowB::new(&id);
                row.set("createdAt", json!(iso_ms(created)))
                    .set("key", json!(format!("g1:{}", self.rng.hex(8))))
                    .set("status", json!("executing"));
                self.out.row(Ns::StoryContexts, row.finish())?;
                ids.push(id);
                for m in 0..2 {
                    let event = self.uuid();
                    let mut row = RowB::new(&event);
                    row.set("createdAt", json!(iso_ms(created + m * MINUTE)))
                        .set("type", json!("user.message"))
                        .set("channel", json!("web"))
                        .set(
                            "content",
                            json!({"parts": [{"type": "text", "text": "hola"}]}),
                        );
                    self.out.row(Ns::StoryEvents, row.finish())?;
                    ids.push(event);
                }
            }
            self.record(
                CaseKind::LeftoverG1Rows,
                Ns::StoryContexts,
                ids,
                json!({"namespaces": ["story_contexts", "story_events"]}),
            )?;
        }
        if self.draw(&[CaseKind::LeftoverThreadNamespace]).is_some() {
            let mut ids = Vec::new();
            for n in 0..2 {
                let id = self.uuid();
                let mut row = RowB::new(&id);
                row.set("createdAt", json!(iso_ms(self.org_start + n * DAY)));
                self.out.row(Ns::Thread, row.finish())?;
                ids.push(id);
            }
            self.record(
                CaseKind::LeftoverThreadNamespace,
                Ns::Thread,
                ids,
                Value::Null,
            )?;
        }
        Ok(())
    }

    /// `schema_duplicate_link`: the leftover `thread` namespace and `thread_contexts` rows
    /// linked through a `thread_contexts->thread` link that is not thread V1's.
    fn schema_conflict(&mut self) -> Result<(), GenError> {
        let mut ids = Vec::new();
        let mut links = Vec::new();
        for n in 0..2 {
            let thread = self.uuid();
            let created = self.org_start + n * HOUR;
            let mut row = RowB::new(&thread);
            row.set("createdAt", json!(iso_ms(created)));
            self.out.row(Ns::Thread, row.finish())?;
            let context = self.uuid();
            let mut row = RowB::new(&context);
            row.set("createdAt", json!(iso_ms(created)))
                .set("key", json!(format!("legacy-thread:{}", self.rng.hex(10))))
                .set("status", json!("open"))
                .set("thread", link(&thread));
            links.push(row.finish());
            ids.push(context);
            ids.push(thread);
        }
        self.out.end_chunk()?;
        for row in links {
            self.out.row(Ns::ThreadContexts, row)?;
        }
        self.out.end_chunk()?;
        self.record(
            CaseKind::SchemaDuplicateLink,
            Ns::ThreadContexts,
            ids,
            json!({"ident": "thread_contexts->thread", "existingLink": {"forward": "thread_contexts.thread", "reverse": "thread.contexts"}, "wantedLink": {"forward": "thread_contexts.thread", "reverse": "thread_threads.contexts"}}),
        )
    }

    /// `conversation_history_orphan`: an award's WhatsApp conversation (whatsapp_messages and
    /// conversation_messages) with no context `award_<awardId>`.
    fn conversation_orphan(&mut self) -> Result<(), GenError> {
        let tender = self.tenders[0].clone();
        let award = self.uuid();
        let created = self.org_start + DAY;
        let mut row = RowB::new(&award);
        row.set("createdAt", json!(iso_ms(created)))
            .set("status", json!("awarded"))
            .set("tender", link(&tender));
        self.out.row(Ns::AwardAwards, row.finish())?;
        let conversation = self.uuid();
        let mut ids = vec![award.clone(), tender.clone()];
        let count = self.rng.range(4, 8);
        for n in 0..count {
            let wa = self.uuid();
            let at = created + n as i64 * 7 * MINUTE;
            let body = if n == 0 {
                format!("Hola, sobre la licitación {tender}: ¿pueden cotizar?")
            } else {
                self.text()
            };
            let direction = if n % 2 == 0 { "inbound" } else { "outbound" };
            let mut row = RowB::new(&wa);
            row.set("body", json!(body))
                .set("conversation", json!(conversation))
                .set("direction", json!(direction))
                .set("createdAt", json!(iso_ms(at)))
                .set("updatedAt", json!(iso_ms(at)));
            self.out.row(Ns::WhatsappMessages, row.finish())?;
            let cm = self.uuid();
            let mut row = RowB::new(&cm);
            row.set("whatsappMessage", json!(wa))
                .set("createdAt", json!(iso_ms(at)));
            self.out.row(Ns::ConversationMessages, row.finish())?;
            ids.push(wa);
            ids.push(cm);
        }
        self.out.end_chunk()?;
        self.record(
            CaseKind::ConversationHistoryOrphan,
            Ns::WhatsappMessages,
            ids,
            json!({"tenderId": tender, "awardId": award, "contextKey": format!("award_{award}"), "conversation": conversation, "messages": count}),
        )
    }

    fn date_value(&mut self, kind: Option<CaseKind>, ms: i64) -> Option<Value> {
        match kind {
            Some(CaseKind::CreatedAtMissing) => None,
            Some(CaseKind::DateEpochMs) => Some(json!(ms)),
            Some(CaseKind::DateEpochSeconds) => Some(json!(ms / 1000)),
            Some(CaseKind::DateInvalid) => {
                let bad = ["not a date", "2025-13-45T99:00:00Z", "yesterday", ""];
                Some(json!(*self.rng.pick(&bad)))
            }
            Some(CaseKind::DateFuture) => Some(json!(iso_ms(ms + 5 * 365 * DAY))),
            _ => Some(json!(iso_ms(ms))),
        }
    }

    fn context(&mut self) -> Result<(), GenError> {
        let ctx_id = self.uuid();
        let n = self.contexts_made;
        self.contexts_made += 1;
        let kind = if self.settings.fixtures && n < 4 {
            [
                ContextKind::Award,
                ContextKind::Web,
                ContextKind::Structure,
                ContextKind::Keyless,
            ][n as usize]
        } else {
            match self.rng.pick_weighted(&[55.0, 25.0, 12.0, 8.0]) {
                0 => ContextKind::Web,
                1 => ContextKind::Award,
                2 => ContextKind::Structure,
                _ => ContextKind::Keyless,
            }
        };
        let award = (kind == ContextKind::Award).then(|| self.rng.uuid());
        let mut key = match kind {
            ContextKind::Web => Some(if self.rng.chance(0.5) {
                ctx_id.clone()
            } else {
                self.rng.uuid()
            }),
            ContextKind::Award => Some(format!("award_{}", award.as_deref().unwrap_or_default())),
            ContextKind::Structure => Some(format!("structure:{}", self.rng.uuid())),
            ContextKind::Keyless => None,
        };
        let created = self.org_start + self.rng.below((450 * DAY) as u64) as i64;
        // Key cases.
        let mut key_case = None;
        if key.is_some() {
            let mut candidates = Vec::new();
            if self.pending_keyless.is_some() {
                candidates.push(CaseKind::ContextKeyEqualsContextId);
            }
            if self.last_key.is_some() && kind != ContextKind::Award {
                candidates.push(CaseKind::ContextKeyCaseVariant);
            }
            candidates.extend([
                CaseKind::PreexistingThreadKey,
                CaseKind::PreexistingThreadContextKey,
            ]);
            key_case = self.draw(&candidates);
        } else if self.pending_keyless.is_none()
            && self.rate(CaseKind::ContextKeyEqualsContextId) > 0.0
        {
            // Remember a keyless context: the next keyed one may take its id as key.
            if self.settings.fixtures && self.missing[CaseKind::ContextKeyEqualsContextId as usize]
                || self
                    .rng
                    .chance(self.rate(CaseKind::ContextKeyEqualsContextId) * 8.0)
            {
                self.pending_keyless = Some(ctx_id.clone());
            }
        }
        match key_case {
            Some(CaseKind::ContextKeyEqualsContextId) => {
                let other = self.pending_keyless.take().unwrap_or_default();
                key = Some(other.clone());
                self.record(
                    CaseKind::ContextKeyEqualsContextId,
                    Ns::ContextContexts,
                    vec![other.clone(), ctx_id.clone()],
                    json!({"key": other, "keyedContext": ctx_id, "keylessContext": other}),
                )?;
            }
            Some(CaseKind::ContextKeyCaseVariant) => {
                let previous = self.last_key.clone().unwrap_or_default();
                // A UUID-shaped key is never upper-cased: servers store UUID strings in lower
                // case, so the variant would collide with the original on the unique key.
                let uuid_shaped = previous.len() == 36
                    && previous.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-');
                let variant = if self.rng.chance(0.5) && !uuid_shaped {
                    previous.to_uppercase()
                } else {
                    format!(" {previous} ")
                };
                key = Some(variant.clone());
                // The previous context's id is not kept; the case names the key it varies.
                self.record(
                    CaseKind::ContextKeyCaseVariant,
                    Ns::ContextContexts,
                    vec![ctx_id.clone()],
                    json!({"key": variant, "variantOf": previous}),
                )?;
            }
            Some(
                kind @ (CaseKind::PreexistingThreadKey | CaseKind::PreexistingThreadContextKey),
            ) => {
                let existing = self.uuid();
                let k = key.clone().unwrap_or_default();
                let mut row = RowB::new(&existing);
                row.set("createdAt", json!(iso_ms(created + DAY)))
                    .set("updatedAt", json!(iso_ms(created + DAY)))
                    .set("key", json!(k))
                    .set("status", json!("open"));
                let ns = if kind == CaseKind::PreexistingThreadKey {
                    Ns::ThreadThreads
                } else {
                    row.set("content", json!({}));
                    Ns::ThreadContexts
                };
                self.out.row(ns, row.finish())?;
                self.record(
                    kind,
                    Ns::ContextContexts,
                    vec![ctx_id.clone(), existing.clone()],
                    json!({"key": k, "existingNamespace": ns.name(), "existingId": existing}),
                )?;
            }
            _ => {}
        }
        if let Some(k) = &key {
            if kind != ContextKind::Award && !k.starts_with(' ') {
                self.last_key = Some(k.clone());
            }
        }
        let channel = if kind == ContextKind::Award {
            "whatsapp"
        } else {
            "web"
        };
        let conversation = (kind == ContextKind::Award).then(|| self.rng.uuid());
        if let Some(award) = &award {
            let tender = self.rng.pick(&self.tenders).clone();
            let mut row = RowB::new(award);
            row.set("createdAt", json!(iso_ms(created - HOUR)))
                .set("status", json!("awarded"))
                .set("tender", link(&tender));
            self.out.row(Ns::AwardAwards, row.finish())?;
        }

        // Turns.
        let empty = self.draw(&[CaseKind::ContextWithoutEvents]).is_some();
        let remaining = self.target_events.saturating_sub(self.events);
        let n_exec = if empty {
            0
        } else if self.rng.chance(0.01) && remaining > 400 {
            self.rng.range(100, 2000).min(remaining / 2)
        } else {
            (1 + self.rng.neg_binomial(3.0, 0.8)).min((remaining / 2).max(1))
        };
        let mut t = created + self.rng.range(1, 120) as i64 * SECOND;
        let mut turns: Vec<Turn> = Vec::new();
        let mut first_text = true;
        for _ in 0..n_exec {
            if conversation.is_some() && self.rng.chance(0.4) {
                // A human WhatsApp message with no execution (inbound or outbound).
                let direction = if self.rng.chance(0.5) {
                    "inbound"
                } else {
                    "outbound"
                };
                self.extra_item(
                    &ctx_id,
                    t,
                    conversation.as_deref(),
                    direction,
                    award.as_deref(),
                    &mut first_text,
                )?;
                t += self.rng.range(1, 600) as i64 * SECOND;
            }
            let turn = self.turn(
                &ctx_id,
                channel,
                t,
                conversation.as_deref(),
                award.as_deref(),
                &turns,
                &mut first_text,
            )?;
            turns.push(turn);
            let gap = self.rng.lognormal(30.0 * 60.0, 3.0 * 86_400.0) as i64 * SECOND;
            t += gap.clamp(5 * SECOND, 20 * DAY);
        }
        // The context row, last: its currentExecution and updatedAt are known now.
        let mut row = RowB::new(&ctx_id);
        // A context without events or executions has nothing to derive createdAt from: its
        // date cases would turn into a reject, a different case.
        let attr_candidates: &[CaseKind] = if empty {
            &[
                CaseKind::StatusNull,
                CaseKind::StatusStaleRunning,
                CaseKind::ContentNull,
                CaseKind::LeftoverContextType,
            ]
        } else {
            &[
                CaseKind::CreatedAtMissing,
                CaseKind::StatusNull,
                CaseKind::StatusStaleRunning,
                CaseKind::ContentNull,
                CaseKind::LeftoverContextType,
                CaseKind::DateEpochSeconds,
            ]
        };
        let attr_case = self.draw(attr_candidates);
        if let Some(value) = self.date_value(attr_case, created) {
            row.set("createdAt", value);
        }
        row.set("updatedAt", json!(iso_ms(t)));
        if let Some(k) = &key {
            row.set("key", json!(k));
        }
        let status = match attr_case {
            Some(CaseKind::StatusNull) => Value::Null,
            Some(CaseKind::StatusStaleRunning) => json!(if self.rng.chance(0.8) {
                "streaming"
            } else {
                "executing"
            }),
            _ => json!(if self.rng.chance(0.95) {
                "open"
            } else {
                "closed"
            }),
        };
        row.set("status", status);
        if attr_case == Some(CaseKind::ContentNull) {
            row.set("content", Value::Null);
        } else {
            let mut rng = self.rng.clone();
            let content = self
                .content()
                .context_content(&mut rng, kind == ContextKind::Structure);
            self.rng = rng;
            row.set("content", content);
        }
        if attr_case == Some(CaseKind::LeftoverContextType) {
            row.set("type", json!("story"));
        }
        // currentExecution
        let mut link_candidates = vec![CaseKind::LeftoverOrganizationLink];
        if !turns.is_empty() {
            link_candidates.insert(0, CaseKind::CurrentExecutionDangling);
        }
        if turns.len() >= 2 {
            link_candidates.insert(1, CaseKind::CurrentExecutionStale);
        }
        let link_case = self.draw(&link_candidates);
        let current = match link_case {
            Some(CaseKind::CurrentExecutionDangling) => Some(self.uuid()),
            Some(CaseKind::CurrentExecutionStale) => Some(turns[0].exec_id.clone()),
            _ => turns.last().map(|turn| turn.exec_id.clone()),
        };
        row.set(
            "currentExecution",
            current.as_deref().map_or_else(empty_link, link),
        );
        if link_case == Some(CaseKind::LeftoverOrganizationLink) {
            let org_row = match &self.organizations_row {
                Some(id) => id.clone(),
                None => {
                    let id = self.uuid();
                    let mut org = RowB::new(&id);
                    org.set("name", json!("Acme (G1)"))
                        .set("createdAt", json!(iso_ms(self.org_start)));
                    self.out.row(Ns::Organizations, org.finish())?;
                    self.organizations_row = Some(id.clone());
                    id
                }
            };
            row.set("organization", link(&org_row));
            self.record(
                CaseKind::LeftoverOrganizationLink,
                Ns::ContextContexts,
                vec![ctx_id.clone(), org_row],
                Value::Null,
            )?;
        }
        self.out.row(Ns::ContextContexts, row.finish())?;
        if let Some(kind) = attr_case {
            self.record(
                kind,
                Ns::ContextContexts,
                vec![ctx_id.clone()],
                json!({"field": match kind {
                    CaseKind::StatusNull | CaseKind::StatusStaleRunning => "status",
                    CaseKind::ContentNull => "content",
                    CaseKind::LeftoverContextType => "type",
                    _ => "createdAt",
                }}),
            )?;
        }
        if let Some(kind @ (CaseKind::CurrentExecutionDangling | CaseKind::CurrentExecutionStale)) =
            link_case
        {
            let latest = turns.last().map(|turn| turn.exec_id.clone());
            self.record(
                kind,
                Ns::ContextContexts,
                vec![ctx_id.clone()],
                json!({"currentExecution": current, "latestExecution": latest}),
            )?;
        }
        if empty {
            self.record(
                CaseKind::ContextWithoutEvents,
                Ns::ContextContexts,
                vec![ctx_id],
                Value::Null,
            )?;
        }
        Ok(())
    }

    /// A WhatsApp row for a whatsapp-channel event, its conversation message, and their cases.
    fn whatsapp(
        &mut self,
        at: i64,
        body: &str,
        conversation: &str,
        direction: &str,
    ) -> Result<String, GenError> {
        let wa = self.uuid();
        let case = self.draw(&[
            CaseKind::ConversationIdNotUuid,
            CaseKind::ConversationMessageDangling,
            CaseKind::WhatsappIdNotUuid,
        ]);
        let mut row = RowB::new(&wa);
        if self.rng.chance(0.1) {
            row.set(
                "rawData",
                json!({"Body": body, "From": "whatsapp:+5491100000000"}),
            );
        } else {
            row.set("body", json!(body));
        }
        let conversation = if case == Some(CaseKind::ConversationIdNotUuid) {
            format!("CH{}", self.rng.hex(32))
        } else {
            conversation.to_string()
        };
        row.set("conversation", json!(conversation))
            .set("direction", json!(direction))
            .set("createdAt", json!(iso_ms(at)))
            .set("updatedAt", json!(iso_ms(at + SECOND)));
        self.out.row(Ns::WhatsappMessages, row.finish())?;
        let cm = self.uuid();
        let mut row = RowB::new(&cm);
        let dangling =
            (case == Some(CaseKind::ConversationMessageDangling)).then(|| self.rng.uuid());
        row.set(
            "whatsappMessage",
            json!(dangling.clone().unwrap_or_else(|| wa.clone())),
        )
        .set("createdAt", json!(iso_ms(at)));
        self.out.row(Ns::ConversationMessages, row.finish())?;
        match case {
            Some(CaseKind::ConversationIdNotUuid) => {
                self.record(
                    CaseKind::ConversationIdNotUuid,
                    Ns::WhatsappMessages,
                    vec![wa.clone()],
                    json!({"conversation": conversation}),
                )?;
            }
            Some(CaseKind::ConversationMessageDangling) => {
                self.record(
                    CaseKind::ConversationMessageDangling,
                    Ns::ConversationMessages,
                    vec![cm],
                    json!({"whatsappMessage": dangling}),
                )?;
            }
            Some(CaseKind::WhatsappIdNotUuid) => {
                let odd = format!("SM{}", self.rng.hex(32));
                let mut row = RowB::new(&odd);
                row.set("body", json!(body))
                    .set("conversation", json!(conversation))
                    .set("direction", json!(direction))
                    .set("createdAt", json!(iso_ms(at)));
                self.out.row(Ns::WhatsappMessages, row.finish())?;
                self.record(
                    CaseKind::WhatsappIdNotUuid,
                    Ns::WhatsappMessages,
                    vec![odd],
                    Value::Null,
                )?;
            }
            _ => {}
        }
        Ok(wa)
    }

    fn whatsapp_body(&mut self, award: Option<&str>, first: &mut bool) -> String {
        let text = self.text();
        if *first {
            *first = false;
            let tender = self.rng.pick(&self.tenders).clone();
            let _ = award;
            format!("Licitación {tender}: {text}")
        } else {
            text
        }
    }

    fn extra_item(
        &mut self,
        ctx: &str,
        at: i64,
        conversation: Option<&str>,
        direction: &str,
        award: Option<&str>,
        first: &mut bool,
    ) -> Result<(), GenError> {
        let body = self.whatsapp_body(award, first);
        let wa = self.whatsapp(at, &body, conversation.unwrap_or_default(), direction)?;
        let id = self.uuid();
        let item_type = if direction == "inbound" {
            "user.message"
        } else {
            "assistant.message"
        };
        let parts = vec![json!({"type": "text", "text": body})];
        self.event(
            &id,
            ctx,
            "whatsapp",
            item_type,
            "stored",
            at,
            parts,
            Some(&wa),
        )?;
        Ok(())
    }

    /// One event row with its per-row case. Returns the id as links name it.
    #[allow(clippy::too_many_arguments)]
    fn event(
        &mut self,
        id: &str,
        ctx: &str,
        channel: &str,
        item_type: &str,
        status: &str,
        at: i64,
        parts: Vec<Value>,
        wa: Option<&str>,
    ) -> Result<(), GenError> {
        let case = self.draw(&[
            CaseKind::EventWithoutContext,
            CaseKind::IdUppercase,
            CaseKind::CreatedAtMissing,
            CaseKind::ChannelMissing,
            CaseKind::ContentNull,
            CaseKind::ContentWithoutParts,
            CaseKind::PartsNotArray,
            CaseKind::DateEpochMs,
            CaseKind::DateEpochSeconds,
            CaseKind::DateInvalid,
            CaseKind::DateFuture,
            CaseKind::ContentHuge,
            CaseKind::ContentDeepNesting,
            CaseKind::UnicodeText,
            CaseKind::UnicodeNul,
            CaseKind::LoneSurrogate,
            CaseKind::StatusNull,
        ]);
        let row_id = if case == Some(CaseKind::IdUppercase) {
            id.to_uppercase()
        } else {
            id.to_string()
        };
        let mut row = RowB::new(&row_id);
        if case != Some(CaseKind::ChannelMissing) {
            row.set("channel", json!(channel));
        }
        if let Some(value) = self.date_value(case, at) {
            row.set("createdAt", value);
        }
        // Item types: mostly the trigger/reaction pair, with system, unknown and already-new types.
        let roll = self.rng.f64();
        let item_type = if roll < 0.01 {
            "system.message"
        } else if roll < 0.015 {
            "note"
        } else if roll < 0.02 {
            if item_type == "user.message" {
                "input_text"
            } else {
                "output_text"
            }
        } else {
            item_type
        };
        row.set("type", json!(item_type));
        let mut parts = parts;
        let content = match case {
            Some(CaseKind::ContentNull) => Value::Null,
            Some(CaseKind::ContentWithoutParts) => json!({"text": "sin partes"}),
            Some(CaseKind::PartsNotArray) => {
                if self.rng.chance(0.5) {
                    json!({"parts": {"0": {"type": "text", "text": "objeto"}}})
                } else {
                    json!({"parts": "[{\"type\":\"text\",\"text\":\"cadena\"}]"})
                }
            }
            Some(CaseKind::ContentHuge) => {
                let mut rng = self.rng.clone();
                let huge = self.content().huge_part(&mut rng);
                self.rng = rng;
                parts.push(huge);
                json!({"parts": parts})
            }
            Some(CaseKind::ContentDeepNesting) => {
                parts.push(json!({"type": "data-tree", "data": Content::deep_value(100)}));
                json!({"parts": parts})
            }
            Some(CaseKind::UnicodeText) => {
                let mut rng = self.rng.clone();
                let text = self.content().unicode_text(&mut rng);
                self.rng = rng;
                parts.push(json!({"type": "text", "text": text}));
                json!({"parts": parts})
            }
            Some(CaseKind::UnicodeNul) => {
                parts.push(json!({"type": "text", "text": "antes\u{0}después"}));
                json!({"parts": parts})
            }
            Some(CaseKind::LoneSurrogate) => {
                parts.push(
                    json!({"type": "text", "text": format!("roto {LONE_SURROGATE_MARK} aquí")}),
                );
                json!({"parts": parts})
            }
            _ => json!({"parts": parts}),
        };
        row.set("content", content);
        row.set(
            "status",
            if case == Some(CaseKind::StatusNull) {
                Value::Null
            } else {
                json!(status)
            },
        );
        row.set(
            "context",
            if case == Some(CaseKind::EventWithoutContext) {
                empty_link()
            } else {
                link(ctx)
            },
        );
        row.set("execution", empty_link());
        if let Some(wa) = wa {
            row.set("whatsappMessages", link(wa));
        }
        self.out.row(Ns::ContextEvents, row.finish())?;
        self.events += 1;
        if let Some(kind) = case {
            let detail = match kind {
                CaseKind::IdUppercase => json!({"canonicalId": id}),
                CaseKind::CreatedAtMissing
                | CaseKind::DateEpochMs
                | CaseKind::DateEpochSeconds
                | CaseKind::DateInvalid
                | CaseKind::DateFuture => json!({"field": "createdAt", "actual": iso_ms(at)}),
                CaseKind::StatusNull => json!({"field": "status"}),
                CaseKind::LoneSurrogate => {
                    json!({"files": "the text holds the escape \\ud800", "workspace": "never written (engine cannot hold it)"})
                }
                _ => Value::Null,
            };
            self.record(kind, Ns::ContextEvents, vec![row_id], detail)?;
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn turn(
        &mut self,
        ctx: &str,
        channel: &str,
        t0: i64,
        conversation: Option<&str>,
        award: Option<&str>,
        previous: &[Turn],
        first_text: &mut bool,
    ) -> Result<Turn, GenError> {
        let exec_id = self.uuid();
        // An extra orphan execution (no context, no steps) now and then.
        if let Some(kind) = self.draw(&[CaseKind::ExecutionWithoutContext]) {
            let orphan = self.uuid();
            let mut row = RowB::new(&orphan);
            row.set("createdAt", json!(iso_ms(t0 - SECOND)))
                .set("updatedAt", json!(iso_ms(t0)))
                .set("status", json!("failed"))
                .set("context", empty_link())
                .set("trigger", empty_link())
                .set("reaction", empty_link());
            self.out.row(Ns::StoryExecutions, row.finish())?;
            self.record(kind, Ns::StoryExecutions, vec![orphan], Value::Null)?;
        }
        let mut candidates = vec![
            CaseKind::ExecutionReactionDangling,
            CaseKind::ExecutionTriggerDangling,
            CaseKind::IdWhitespace,
            CaseKind::UpdatedBeforeCreated,
            CaseKind::CreatedAtTie,
            CaseKind::ReactionStuckPending,
            CaseKind::ItemManyParts,
            CaseKind::StatusStaleRunning,
            CaseKind::StatusNull,
            CaseKind::StatusOutOfVocabulary,
            CaseKind::CreatedAtMissing,
        ];
        if previous
            .last()
            .and_then(|turn| turn.trigger_id.as_ref())
            .is_some()
        {
            candidates.insert(0, CaseKind::TriggerShared);
        }
        let case = self.draw(&candidates);
        // Trigger.
        let trigger_id = match case {
            Some(CaseKind::TriggerShared) => {
                previous.last().and_then(|turn| turn.trigger_id.clone())
            }
            Some(CaseKind::ExecutionTriggerDangling) => Some(self.uuid()),
            _ => {
                let id = self.uuid();
                let body = if conversation.is_some() {
                    self.whatsapp_body(award, first_text)
                } else {
                    self.text()
                };
                let wa = match conversation {
                    Some(conversation) => {
                        Some(self.whatsapp(t0, &body, conversation, "inbound")?)
                    }
                    None => None,
                };
                self.event(
                    &id,
                    ctx,
                    channel,
                    "user.message",
                    "stored",
                    t0,
                    vec![json!({"type": "text", "text": body})],
                    wa.as_deref(),
                )?;
                Some(id)
            }
        };
        let reaction_dangling = case == Some(CaseKind::ExecutionReactionDangling);
        let reaction_id = self.uuid();
        // Steps.
        let (n_steps, capped) = if case == Some(CaseKind::ItemManyParts) || reaction_dangling {
            (1, false)
        } else {
            let n = 1 + self.rng.geometric(0.45);
            (n.min(20), n >= 20)
        };
        let exec_status: Value = match case {
            Some(CaseKind::StatusStaleRunning) => json!(if self.rng.chance(0.8) {
                "executing"
            } else {
                "running"
            }),
            Some(CaseKind::StatusNull) => Value::Null,
            Some(CaseKind::StatusOutOfVocabulary) => json!(*self.rng.pick(&[
                "done",
                "Completed",
                " success ",
                "error",
                "CANCELLED",
                "cancelled"
            ])),
            _ if reaction_dangling || capped => json!("failed"),
            _ => json!(if self.rng.chance(0.95) {
                "completed"
            } else {
                "failed"
            }),
        };
        let exec_failed = exec_status.as_str() == Some("failed");
        let mut embedded_parts: Vec<Value> = Vec::new();
        let mut t = t0 + self.rng.range(1, 5) as i64 * SECOND;
        let mut reaction_at = t;
        let mut iteration_offset: i64 = 0;
        let mut prev_step: Option<String> = None;
        let other_exec = previous.last().map(|turn| turn.exec_id.clone());
        for i in 0..n_steps {
            let step_id = self.uuid();
            let step_created = t;
            let duration = self.rng.range(1, 60) as i64 * SECOND;
            t += duration;
            if i == 0 {
                reaction_at = if case == Some(CaseKind::CreatedAtTie) {
                    t0
                } else {
                    t
                };
            }
            let mut step_candidates = vec![
                CaseKind::StepExecutionLinkMissing,
                CaseKind::StepExecutionAttrMissing,
                CaseKind::AttrIdNotUuid,
                CaseKind::ReactionEventIdFallback,
                CaseKind::IterationMissing,
                CaseKind::StepEventIdDangling,
                CaseKind::CreatedAtMissing,
                CaseKind::StatusNull,
            ];
            if other_exec.is_some() {
                step_candidates.insert(2, CaseKind::StepExecutionIdMismatch);
            }
            if i > 0 {
                step_candidates.extend([CaseKind::IterationDuplicate, CaseKind::IterationGap]);
            }
            let step_case = self.draw(&step_candidates);
            if step_case == Some(CaseKind::IterationGap) {
                iteration_offset += 1;
            }
            let iteration = if step_case == Some(CaseKind::IterationDuplicate) {
                i as i64 - 1 + iteration_offset
            } else {
                i as i64 + iteration_offset
            };
            let last = i + 1 == n_steps;
            let step_status: Value = if step_case == Some(CaseKind::StatusNull) {
                Value::Null
            } else if exec_status
                .as_str()
                .is_some_and(|s| s == "executing" || s == "running")
                && last
            {
                json!("running")
            } else if (exec_failed || capped) && last {
                json!("failed")
            } else {
                json!("completed")
            };
            let mut row = RowB::new(&step_id);
            if let Some(value) = self.date_value(step_case, step_created) {
                row.set("createdAt", value);
            }
            row.set("updatedAt", json!(iso_ms(t)));
            row.set("status", step_status.clone());
            if step_case != Some(CaseKind::IterationMissing) {
                row.set("iteration", json!(iteration));
            }
            let execution_attr = match step_case {
                Some(CaseKind::StepExecutionAttrMissing) => None,
                Some(CaseKind::StepExecutionIdMismatch) => other_exec.clone(),
                Some(CaseKind::AttrIdNotUuid) => Some(format!("exec_{}", self.rng.hex(12))),
                _ => Some(exec_id.clone()),
            };
            if let Some(attr) = &execution_attr {
                row.set("executionId", json!(attr));
            }
            if self.rng.chance(0.3) {
                if let Some(trigger) = &trigger_id {
                    row.set("triggerEventId", json!(trigger));
                }
                row.set("reactionEventId", json!(reaction_id));
            }
            if step_case == Some(CaseKind::ReactionEventIdFallback) {
                row.set(
                    "reactionEventId",
                    json!(format!("{}-{}", step_created, self.rng.hex(6))),
                );
            }
            let event_id = if step_case == Some(CaseKind::StepEventIdDangling) {
                self.uuid()
            } else {
                reaction_id.clone()
            };
            row.set("eventId", json!(event_id));
            // Parts.
            let n_parts = if case == Some(CaseKind::ItemManyParts) {
                self.rng.range(1000, 1200)
            } else {
                match self.rng.pick_weighted(&[35.0, 30.0, 28.0, 6.0, 1.0]) {
                    0 => 1,
                    1 => 2,
                    2 => self.rng.range(3, 5),
                    3 => self.rng.range(6, 15),
                    _ => self.rng.range(16, 40),
                }
            };
            let mut tool_calls = Vec::new();
            let mut tool_results = Vec::new();
            let mut idx: i64 = 0;
            let mut part_rows = Vec::new();
            let gap_at = if n_parts >= 2 && self.draw(&[CaseKind::IdxGap]).is_some() {
                Some(1)
            } else {
                None
            };
            for j in 0..n_parts {
                if gap_at == Some(j) {
                    idx += 1;
                }
                let pair = if case == Some(CaseKind::ItemManyParts) {
                    let text = format!("fragmento {j}");
                    super::text::PartPair {
                        stored: json!({"type": "text", "text": text}),
                        embedded: json!({"type": "text", "text": text}),
                        is_tool: false,
                        tool_call: None,
                    }
                } else {
                    let mut rng = self.rng.clone();
                    let pair = self.content().part(&mut rng, false);
                    self.rng = rng;
                    pair
                };
                let mut stored = pair.stored;
                let mut diverged = false;
                if pair.is_tool && self.draw(&[CaseKind::ToolPartStateDiverges]).is_some() {
                    if let Value::Object(map) = &mut stored {
                        map.remove("output");
                        map.remove("errorText");
                        map.insert("state".into(), json!("input-available"));
                    }
                    diverged = true;
                }
                if let Some((call, tool, output)) = pair.tool_call {
                    tool_calls.push(json!({"toolCallId": call, "toolName": tool, "args": stored.get("input").cloned().unwrap_or(Value::Null)}));
                    tool_results.push(json!({"tc": call, "success": !output.is_null(), "output": output, "errorText": Value::Null}));
                }
                embedded_parts.push(pair.embedded);
                let part_id = self.uuid();
                part_rows.push((part_id, idx, stored, diverged));
                idx += 1;
            }
            if !tool_calls.is_empty() {
                row.set("toolCalls", Value::Array(tool_calls));
                row.set("toolExecutionResults", Value::Array(tool_results));
            }
            row.set("continueLoop", json!(!last));
            if step_status.as_str() == Some("failed") {
                row.set(
                    "errorText",
                    json!(if capped {
                        "max iterations reached"
                    } else {
                        "model call failed"
                    }),
                );
            }
            let link_exec = step_case != Some(CaseKind::StepExecutionLinkMissing);
            row.set(
                "execution",
                if link_exec {
                    link(&exec_id)
                } else {
                    empty_link()
                },
            );
            self.out.row(Ns::StorySteps, row.finish())?;
            if let Some(kind) = step_case {
                let detail = match kind {
                    CaseKind::StepExecutionLinkMissing
                    | CaseKind::StepExecutionAttrMissing
                    | CaseKind::StepExecutionIdMismatch
                    | CaseKind::AttrIdNotUuid => {
                        json!({"field": "executionId", "executionId": execution_attr, "execution": exec_id})
                    }
                    CaseKind::IterationMissing
                    | CaseKind::IterationDuplicate
                    | CaseKind::IterationGap => json!({"field": "iteration", "rank": i}),
                    CaseKind::StepEventIdDangling => {
                        json!({"field": "eventId", "eventId": event_id})
                    }
                    CaseKind::ReactionEventIdFallback => json!({"field": "reactionEventId"}),
                    CaseKind::StatusNull => json!({"field": "status"}),
                    _ => json!({"field": "createdAt"}),
                };
                self.record(kind, Ns::StorySteps, vec![step_id.clone()], detail)?;
            }
            if let Some(gap) = gap_at.filter(|gap| *gap < n_parts) {
                let _ = gap;
                let id = part_rows[1].0.clone();
                self.record(
                    CaseKind::IdxGap,
                    Ns::StoryParts,
                    vec![id],
                    json!({"stepId": step_id, "missingIdx": 1}),
                )?;
            }
            let step_updated = t;
            let gap_part = gap_at.and_then(|gap| part_rows.get(gap as usize).map(|p| p.0.clone()));
            let mut first_part_dropped = false;
            for (part_id, idx, stored, diverged) in part_rows {
                // A part that already carries a case that keeps it migrated (the idx gap, the
                // diverging tool state) is not also made unmigratable.
                let keep = diverged || gap_part.as_deref() == Some(part_id.as_str());
                let dropped = self.part(
                    &part_id,
                    &step_id,
                    prev_step.as_deref(),
                    idx,
                    stored,
                    diverged,
                    step_updated,
                    keep,
                )?;
                first_part_dropped |= idx == 0 && dropped;
            }
            // Extra parts: a part of no step, and duplicate / invalid idx parts. A duplicate of
            // the idx-0 key needs the idx-0 part to be migrated (else it is the only one and
            // migrates): the draw is the same, the case is left out.
            let extra = self
                .draw(&[
                    CaseKind::PartStepMissing,
                    CaseKind::PartKeyDuplicate,
                    CaseKind::PartIdxDuplicate,
                    CaseKind::IdxNegative,
                ])
                .filter(|kind| {
                    !(first_part_dropped
                        && matches!(
                            kind,
                            CaseKind::PartKeyDuplicate | CaseKind::PartIdxDuplicate
                        ))
                });
            if let Some(kind) = extra {
                let id = self.uuid();
                let (step_ref, idx, key, linked, updated) = match kind {
                    CaseKind::PartStepMissing => {
                        let ghost = self.uuid();
                        (ghost.clone(), 0, format!("{ghost}:0"), false, step_updated)
                    }
                    CaseKind::PartKeyDuplicate => (
                        step_id.clone(),
                        0,
                        format!("{step_id}:0"),
                        true,
                        step_updated - HOUR,
                    ),
                    CaseKind::PartIdxDuplicate => (
                        step_id.clone(),
                        0,
                        format!("{step_id}:{}", idx + 2_000_000),
                        true,
                        step_updated - HOUR,
                    ),
                    _ => (
                        step_id.clone(),
                        -1,
                        format!("{step_id}:-1"),
                        true,
                        step_updated,
                    ),
                };
                let mut row = RowB::new(&id);
                row.set("key", json!(key))
                    .set("stepId", json!(step_ref))
                    .set("idx", json!(idx))
                    .set("type", json!("text"))
                    .set("part", json!({"type": "text", "text": "duplicado"}))
                    .set("updatedAt", json!(iso_ms(updated)))
                    .set(
                        "step",
                        if linked {
                            link(&step_ref)
                        } else {
                            empty_link()
                        },
                    );
                self.out.row(Ns::StoryParts, row.finish())?;
                let detail = match kind {
                    CaseKind::PartKeyDuplicate | CaseKind::PartIdxDuplicate => {
                        json!({"key": format!("{step_id}:0"), "rejected": id, "kept": "the step's idx-0 part (newer updatedAt)"})
                    }
                    CaseKind::PartStepMissing => json!({"stepId": step_ref}),
                    _ => json!({"idx": -1}),
                };
                self.record(kind, Ns::StoryParts, vec![id], detail)?;
            }
            prev_step = Some(step_id);
        }
        // Reaction.
        let end = t;
        if !reaction_dangling {
            let status = if case == Some(CaseKind::ReactionStuckPending)
                || exec_status
                    .as_str()
                    .is_some_and(|s| s == "executing" || s == "running")
            {
                "pending"
            } else {
                "completed"
            };
            let wa = match conversation {
                Some(conversation) => {
                    let body = embedded_parts
                        .iter()
                        .find_map(|part| part.get("text").and_then(Value::as_str))
                        .unwrap_or("ok")
                        .to_string();
                    Some(self.whatsapp(reaction_at, &body, conversation, "outbound")?)
                }
                None => None,
            };
            self.event(
                &reaction_id,
                ctx,
                channel,
                "assistant.message",
                status,
                reaction_at,
                embedded_parts,
                wa.as_deref(),
            )?;
        }
        // Execution row.
        let created_value = self.date_value(
            if case == Some(CaseKind::CreatedAtMissing) {
                case
            } else {
                None
            },
            t0,
        );
        let row_id = if case == Some(CaseKind::IdWhitespace) {
            format!(" {exec_id} ")
        } else {
            exec_id.clone()
        };
        let mut row = RowB::new(&row_id);
        if let Some(value) = created_value {
            row.set("createdAt", value);
        }
        let updated = if case == Some(CaseKind::UpdatedBeforeCreated) {
            t0 - HOUR
        } else {
            end
        };
        row.set("updatedAt", json!(iso_ms(updated)));
        row.set("status", exec_status);
        if self.rng.chance(0.8) {
            row.set("workflowRunId", json!(format!("wrun_{}", self.rng.hex(26))));
        }
        row.set("context", link(ctx));
        row.set(
            "trigger",
            trigger_id.as_deref().map_or_else(empty_link, link),
        );
        row.set("reaction", link(&reaction_id));
        self.out.row(Ns::StoryExecutions, row.finish())?;
        if let Some(kind) = case {
            let (ns, ids, detail) = match kind {
                CaseKind::TriggerShared => (
                    Ns::ContextEvents,
                    vec![
                        trigger_id.clone().unwrap_or_default(),
                        exec_id.clone(),
                        previous
                            .last()
                            .map(|turn| turn.exec_id.clone())
                            .unwrap_or_default(),
                    ],
                    json!({"trigger": trigger_id}),
                ),
                CaseKind::ReactionStuckPending => (
                    Ns::ContextEvents,
                    vec![reaction_id.clone(), exec_id.clone()],
                    json!({"reaction": reaction_id}),
                ),
                CaseKind::ExecutionReactionDangling => (
                    Ns::StoryExecutions,
                    vec![exec_id.clone()],
                    json!({"reaction": reaction_id}),
                ),
                CaseKind::ExecutionTriggerDangling => (
                    Ns::StoryExecutions,
                    vec![exec_id.clone()],
                    json!({"trigger": trigger_id}),
                ),
                CaseKind::IdWhitespace => (
                    Ns::StoryExecutions,
                    vec![row_id.clone()],
                    json!({"canonicalId": exec_id}),
                ),
                CaseKind::CreatedAtTie => (
                    Ns::ContextEvents,
                    vec![trigger_id.clone().unwrap_or_default(), reaction_id.clone()],
                    json!({"createdAt": iso_ms(t0)}),
                ),
                CaseKind::ItemManyParts => (
                    Ns::ContextEvents,
                    vec![reaction_id.clone(), exec_id.clone()],
                    Value::Null,
                ),
                CaseKind::StatusNull
                | CaseKind::StatusStaleRunning
                | CaseKind::StatusOutOfVocabulary => (
                    Ns::StoryExecutions,
                    vec![exec_id.clone()],
                    json!({"field": "status"}),
                ),
                _ => (
                    Ns::StoryExecutions,
                    vec![exec_id.clone()],
                    json!({"field": if kind == CaseKind::UpdatedBeforeCreated { "updatedAt" } else { "createdAt" }}),
                ),
            };
            self.record(kind, ns, ids, detail)?;
        }
        Ok(Turn {
            exec_id,
            trigger_id: if case == Some(CaseKind::ExecutionTriggerDangling) {
                None
            } else {
                trigger_id
            },
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn part(
        &mut self,
        id: &str,
        step_id: &str,
        other_step: Option<&str>,
        idx: i64,
        stored: Value,
        diverged: bool,
        updated: i64,
        keep: bool,
    ) -> Result<bool, GenError> {
        let mut candidates = vec![
            CaseKind::PartStepLinkMissing,
            CaseKind::PartKeyMismatch,
            CaseKind::IdxMissing,
            CaseKind::IdxString,
        ];
        if other_step.is_some() {
            candidates.insert(1, CaseKind::PartStepIdMismatch);
        }
        // Drawn all the same (the random stream does not depend on `keep`).
        let case = self
            .draw(&candidates)
            .filter(|kind| !(keep && *kind == CaseKind::IdxMissing));
        let mut row = RowB::new(id);
        let key = if case == Some(CaseKind::PartKeyMismatch) {
            format!("{step_id}:{}", idx + 1_000_000)
        } else {
            format!("{step_id}:{idx}")
        };
        let step_attr = if case == Some(CaseKind::PartStepIdMismatch) {
            other_step.unwrap_or(step_id).to_string()
        } else {
            step_id.to_string()
        };
        row.set("key", json!(key)).set("stepId", json!(step_attr));
        match case {
            Some(CaseKind::IdxMissing) => {}
            Some(CaseKind::IdxString) => {
                row.set("idx", json!(idx.to_string()));
            }
            _ => {
                row.set("idx", json!(idx));
            }
        }
        if let Some(kind) = stored.get("type").cloned() {
            row.set("type", kind);
        }
        row.set("part", stored)
            .set("updatedAt", json!(iso_ms(updated)));
        row.set(
            "step",
            if case == Some(CaseKind::PartStepLinkMissing) {
                empty_link()
            } else {
                link(step_id)
            },
        );
        self.out.row(Ns::StoryParts, row.finish())?;
        if let Some(kind) = case {
            let detail = match kind {
                CaseKind::PartKeyMismatch => {
                    json!({"key": key, "expectedKey": format!("{step_id}:{idx}")})
                }
                CaseKind::PartStepIdMismatch => json!({"stepId": step_attr, "step": step_id}),
                CaseKind::IdxMissing | CaseKind::IdxString => json!({"idx": idx}),
                _ => json!({"stepId": step_id}),
            };
            self.record(kind, Ns::StoryParts, vec![id.to_string()], detail)?;
        }
        if diverged {
            self.record(
                CaseKind::ToolPartStateDiverges,
                Ns::StoryParts,
                vec![id.to_string()],
                json!({"stored": "input-available"}),
            )?;
        }
        // Whether the part is not migrated (its key is then free for another part).
        Ok(case == Some(CaseKind::IdxMissing))
    }
}
