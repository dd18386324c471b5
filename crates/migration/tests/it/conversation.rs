//! `migration::conversation`: the conversation-history backfill on the embedded engine, with
//! rows made for each case: a tender with two awards, a message whose date does not parse, a
//! conversation no award can claim, a tiny page size, and a second run that writes nothing.

use std::sync::atomic::{AtomicU64, Ordering};

use instant_api::{
    ApiError, AppAuth, EphemeralAppRequest, EphemeralAppResponse, IndexingJobResponse,
    IndexingJobsResponse, InstantApi, PermsPullResponse, QueryRequest, SchemaApplyResponse,
    SchemaPlanResponse, SchemaPullResponse, SchemaPushRequest, StepsApplyRequest, TransactRequest,
    TransactResponse,
};
use instant_local::engine::LocalEngine;
use instant_schema::Schema;
use migration::conversation::plan::{rules, Disposition};
use migration::conversation::{
    self, context_key, derived_context_id, derived_item_id, ConversationError, Options,
};
use migration::derived_thread_id;
use migration::gen::schema::{as_deployed, SchemaFeatures};
use serde_json::{json, Value};

/// Counts the requests that reach the engine.
struct Counting {
    inner: LocalEngine,
    queries: AtomicU64,
    transacts: AtomicU64,
}

impl Counting {
    fn new(inner: LocalEngine) -> Counting {
        Counting {
            inner,
            queries: AtomicU64::new(0),
            transacts: AtomicU64::new(0),
        }
    }
    fn transacts(&self) -> u64 {
        self.transacts.load(Ordering::SeqCst)
    }
    fn queries(&self) -> u64 {
        self.queries.load(Ordering::SeqCst)
    }
}

impl InstantApi for Counting {
    fn query(&self, auth: &AppAuth, request: &QueryRequest) -> Result<Value, ApiError> {
        self.queries.fetch_add(1, Ordering::SeqCst);
        self.inner.query(auth, request)
    }
    fn transact(
        &self,
        auth: &AppAuth,
        request: &TransactRequest,
    ) -> Result<TransactResponse, ApiError> {
        self.transacts.fetch_add(1, Ordering::SeqCst);
        self.inner.transact(auth, request)
    }
    fn schema_pull(&self, auth: &AppAuth) -> Result<SchemaPullResponse, ApiError> {
        self.inner.schema_pull(auth)
    }
    fn schema_plan(
        &self,
        auth: &AppAuth,
        request: &SchemaPushRequest,
    ) -> Result<SchemaPlanResponse, ApiError> {
        self.inner.schema_plan(auth, request)
    }
    fn schema_push(
        &self,
        auth: &AppAuth,
        request: &SchemaPushRequest,
    ) -> Result<SchemaApplyResponse, ApiError> {
        self.inner.schema_push(auth, request)
    }
    fn schema_steps_apply(
        &self,
        auth: &AppAuth,
        request: &StepsApplyRequest,
    ) -> Result<SchemaApplyResponse, ApiError> {
        self.inner.schema_steps_apply(auth, request)
    }
    fn perms_pull(&self, auth: &AppAuth) -> Result<PermsPullResponse, ApiError> {
        self.inner.perms_pull(auth)
    }
    fn indexing_job_group(
        &self,
        auth: &AppAuth,
        group_id: &str,
    ) -> Result<IndexingJobsResponse, ApiError> {
        self.inner.indexing_job_group(auth, group_id)
    }
    fn indexing_job(&self, auth: &AppAuth, job_id: &str) -> Result<IndexingJobResponse, ApiError> {
        self.inner.indexing_job(auth, job_id)
    }
    fn create_ephemeral_app(
        &self,
        request: &EphemeralAppRequest,
    ) -> Result<EphemeralAppResponse, ApiError> {
        self.inner.create_ephemeral_app(request)
    }
}

const TENDER: &str = "7a000000-0000-4000-8000-000000000001";
const OTHER_TENDER: &str = "7a000000-0000-4000-8000-000000000002";
const AWARD_1: &str = "a1000000-0000-4000-8000-000000000001";
const AWARD_2: &str = "a2000000-0000-4000-8000-000000000002";
const AWARD_OTHER: &str = "a3000000-0000-4000-8000-000000000003";

/// `m<n>` as a UUID.
fn msg(n: u32) -> String {
    format!("5e000000-0000-4000-8000-{n:012}")
}

/// `cm<n>` as a UUID.
fn cm(n: u32) -> String {
    format!("c0000000-0000-4000-8000-{n:012}")
}

fn transact(engine: &LocalEngine, auth: &AppAuth, steps: Vec<Value>) {
    engine
        .transact(
            auth,
            &TransactRequest {
                steps,
                throw_on_missing_attrs: true,
            },
        )
        .unwrap();
}

/// An app with the esolbay legacy schema, and (when `bridge`) thread V1 with the esolbay links.
fn app(engine: &LocalEngine, bridge: bool) -> AppAuth {
    let auth = engine
        .create_ephemeral_app(&EphemeralAppRequest {
            title: "conversation".into(),
            schema: None,
            rules: None,
        })
        .unwrap()
        .app
        .auth();
    let legacy = as_deployed(SchemaFeatures::default()).unwrap();
    engine
        .schema_push(
            &auth,
            &SchemaPushRequest {
                schema: legacy.to_dsl_json(),
                check_types: false,
                supports_background_updates: false,
            },
        )
        .unwrap();
    if bridge {
        let mut schema = Schema {
            entities: Default::default(),
            links: Default::default(),
            rooms: None,
        };
        conversation::schema::add_bridge_schema(&mut schema).unwrap();
        engine
            .schema_push(
                &auth,
                &SchemaPushRequest {
                    schema: schema.to_dsl_json(),
                    check_types: true,
                    supports_background_updates: false,
                },
            )
            .unwrap();
    }
    auth
}

fn message(id: &str, conversation: &str, body: &str, created: Value, direction: &str) -> Value {
    json!(["update", "whatsapp_messages", id, {
        "body": body, "conversation": conversation, "direction": direction,
        "createdAt": created, "updatedAt": created,
    }])
}

/// The tender with two awards and four conversations:
/// * `c1` names award 1: m1 (mentions the tender), m2, m3 (date does not parse), m4 (outbound);
/// * `c2` names award 2: m5 (mentions the tender and award 2), m6;
/// * `c3` mentions the tender but no award: m7, m8 (ambiguous between the two awards);
/// * `c4` never mentions the tender: m9 (not selected).
///
/// Conversation messages: cm1 -> m1, cm2 -> m2, cm3 -> m3, cm5 -> m5, cm9 -> m9.
fn seed(engine: &LocalEngine, auth: &AppAuth) {
    let mut steps = vec![
        json!(["update", "tender_tenders", TENDER, {"title": "t"}]),
        json!(["update", "tender_tenders", OTHER_TENDER, {"title": "o"}]),
        json!(["update", "award_awards", AWARD_1, {"status": "awarded", "createdAt": "2025-01-01T00:00:00Z"}]),
        json!(["update", "award_awards", AWARD_2, {"status": "awarded", "createdAt": "2025-01-01T00:00:00Z"}]),
        json!(["update", "award_awards", AWARD_OTHER, {"status": "awarded"}]),
        json!(["link", "award_awards", AWARD_1, {"tender": TENDER}]),
        json!(["link", "award_awards", AWARD_2, {"tender": TENDER}]),
        json!(["link", "award_awards", AWARD_OTHER, {"tender": OTHER_TENDER}]),
    ];
    // Written out of timeline order, so the default (insertion) order is not the timeline's.
    steps.push(message(
        &msg(4),
        "c1",
        "enviado",
        json!("2025-02-01T10:30:00Z"),
        "OUTBOUND",
    ));
    steps.push(message(
        &msg(1),
        "c1",
        &format!("Hola, licitación {TENDER}, adjudicación {AWARD_1}"),
        json!("2025-02-01T10:00:00Z"),
        "inbound",
    ));
    steps.push(message(
        &msg(2),
        "c1",
        "  ¿precio?  ",
        json!(1_738_404_000_000i64),
        "inbound",
    ));
    steps.push(message(
        &msg(3),
        "c1",
        "hora rota",
        json!("not a date"),
        "inbound",
    ));
    steps.push(message(
        &msg(5),
        "c2",
        &format!("Licitación {}: award {AWARD_2}", TENDER.to_uppercase()),
        json!("2025-02-02T09:00:00Z"),
        "inbound",
    ));
    steps.push(message(
        &msg(6),
        "c2",
        "ok",
        json!("2025-02-02T09:05:00Z"),
        "outbound",
    ));
    steps.push(message(
        &msg(7),
        "c3",
        &format!("sobre {TENDER}"),
        json!("2025-02-03T09:00:00Z"),
        "inbound",
    ));
    steps.push(message(
        &msg(8),
        "c3",
        "?",
        json!("2025-02-03T09:01:00Z"),
        "inbound",
    ));
    steps.push(message(
        &msg(9),
        "c4",
        "otra cosa",
        json!("2025-02-04T09:00:00Z"),
        "inbound",
    ));
    for (cm_n, m_n) in [(1, 1), (2, 2), (3, 3), (5, 5), (9, 9)] {
        steps.push(
            json!(["update", "conversation_messages", cm(cm_n), {"whatsappMessage": msg(m_n)}]),
        );
    }
    transact(engine, auth, steps);
}

fn options(page_size: usize) -> Options {
    let mut options = Options::new(TENDER);
    options.page_size = page_size;
    options
}

fn context_of(award: &str) -> String {
    derived_context_id(&context_key(award)).to_string()
}

fn thread_of(award: &str) -> String {
    derived_thread_id(&derived_context_id(&context_key(award))).to_string()
}

fn item_of(n: u32) -> String {
    derived_item_id(&msg(n)).to_string()
}

fn query(engine: &LocalEngine, auth: &AppAuth, query: Value) -> Value {
    engine
        .query(
            auth,
            &QueryRequest {
                query,
                inference: false,
            },
        )
        .unwrap()
}

#[test]
fn two_awards_bad_date_and_ambiguity_then_a_second_run_writes_nothing() {
    let engine = LocalEngine::in_memory().unwrap();
    let auth = app(&engine, true);
    seed(&engine, &auth);
    let api = Counting::new(engine.clone());

    let first = conversation::run(&api, &auth, &options(2), &mut |_| {}).unwrap();
    let counts = first.plan.counts;
    assert_eq!(
        (
            counts.awards,
            counts.threads_created,
            counts.contexts_created,
            counts.items_created,
            counts.items_existing,
            counts.conversation_messages,
        ),
        (2, 2, 2, 5, 0, 3)
    );
    // 2 context->thread, 5 × (context, thread, whatsappMessages), 3 × (context, event).
    assert_eq!(counts.links_created, 2 + 15 + 6);
    let rejected: Vec<(&str, &str)> = first
        .plan
        .rejected
        .iter()
        .map(|r| (r.id.as_str(), r.rule))
        .collect();
    let (m3, m7, m8) = (msg(3), msg(7), msg(8));
    assert_eq!(
        rejected,
        vec![
            (m3.as_str(), rules::WHATSAPP_MESSAGE_DATE_INVALID),
            (m7.as_str(), rules::CONVERSATION_AWARD_AMBIGUOUS),
            (m8.as_str(), rules::CONVERSATION_AWARD_AMBIGUOUS),
        ]
    );
    assert!(first.plan.rejected[0].detail.contains("\"not a date\""));
    assert_eq!(first.source.conversation_ids, ["c1", "c2", "c3"]);
    assert_eq!(first.source.scanned_messages, 9);

    let awards = &first.plan.awards;
    assert_eq!(awards.len(), 2);
    assert_eq!(awards[0].award_id, AWARD_1);
    assert_eq!(awards[0].context_id, context_of(AWARD_1));
    assert_eq!(awards[0].thread_id, thread_of(AWARD_1));
    assert_eq!(awards[1].context_id, context_of(AWARD_2));
    let items = |n: usize| -> Vec<(String, &str)> {
        awards[n]
            .items
            .iter()
            .map(|i| (i.item_id.clone(), i.item_type))
            .collect()
    };
    // Timeline order (m2 is 10:00 in epoch ms, same instant as m1; ties by id).
    assert_eq!(
        items(0),
        vec![
            (item_of(1), "input_text"),
            (item_of(2), "input_text"),
            (item_of(4), "output_text")
        ]
    );
    assert_eq!(
        items(1),
        vec![(item_of(5), "input_text"), (item_of(6), "output_text")]
    );
    let apply = first.apply.as_ref().unwrap();
    assert_eq!(apply.steps, first.plan.step_count);
    assert_eq!(api.transacts(), apply.batches.len() as u64);
    let verify = first.verify.as_ref().unwrap();
    assert!(verify.ok, "{verify:#?}");
    assert_eq!(
        (
            verify.expected_items,
            verify.items_found,
            verify.conversation_messages_linked
        ),
        (5, 5, 3)
    );
    assert!(verify.awards.iter().all(|a| a.ordered && a.thread_linked));

    // What the timeline reads: the context by key, its items by createdAt.
    let timeline = query(
        &engine,
        &auth,
        json!({"thread_items": {"$": {"where": {"context.key": context_key(AWARD_1)}, "order": {"createdAt": "asc"}}}}),
    );
    let rows = timeline["thread_items"].as_array().unwrap();
    // m1 and m2 share one instant: the server breaks the tie by item id.
    let mut tied = [item_of(1), item_of(2)];
    tied.sort();
    assert_eq!(
        rows.iter()
            .map(|r| r["id"].as_str().unwrap())
            .collect::<Vec<_>>(),
        [tied[0].clone(), tied[1].clone(), item_of(4)]
    );
    let m2_item = rows
        .iter()
        .find(|r| r["id"] == item_of(2).as_str())
        .unwrap();
    assert_eq!(m2_item["content"]["text"], "¿precio?");
    assert_eq!(m2_item["createdAt"], 1_738_404_000_000i64);
    assert_eq!(m2_item["channel"], "whatsapp");
    assert_eq!(m2_item["status"], "stored");
    let threads = query(&engine, &auth, json!({"thread_threads": {}}));
    assert_eq!(threads["thread_threads"].as_array().unwrap().len(), 2);
    assert_eq!(
        threads["thread_threads"][0]["createdAt"],
        "2025-02-01T10:00:00.000Z"
    );
    let linked = query(
        &engine,
        &auth,
        json!({"conversation_messages": {"$": {"where": {"id": cm(3)}}, "context": {}, "event": {}}}),
    );
    assert_eq!(linked["conversation_messages"][0]["context"], json!([]));

    // Second run: nothing new, not one transaction.
    let before = api.transacts();
    let second = conversation::run(&api, &auth, &options(2), &mut |_| {}).unwrap();
    assert_eq!(api.transacts(), before);
    let again = second.plan.counts;
    assert_eq!(
        (
            again.threads_created,
            again.contexts_created,
            again.items_created,
            again.items_existing,
            again.links_created,
            again.rejected,
        ),
        (0, 0, 0, 5, 0, 3)
    );
    assert_eq!(second.plan.step_count, 0);
    assert!(second
        .plan
        .awards
        .iter()
        .all(|a| a.context == Disposition::Existing && a.thread == Disposition::Existing));
    assert_eq!(second.plan.awards, {
        // Same ids and items; only the dispositions differ.
        let mut expected = first.plan.awards.clone();
        for award in &mut expected {
            award.context = Disposition::Existing;
            award.thread = Disposition::Existing;
            award.items_existing = award.items.len();
            award.items_created = 0;
            for item in &mut award.items {
                item.disposition = Disposition::Existing;
                item.links_added.clear();
            }
            for link in &mut award.conversation_message_links {
                link.links_added.clear();
            }
        }
        expected
    });
    assert!(second.verify.unwrap().ok);
}

#[test]
fn the_page_size_changes_the_requests_not_the_plan() {
    let mut plans = Vec::new();
    for page_size in [1, 2, 3, 500] {
        let engine = LocalEngine::in_memory().unwrap();
        let auth = app(&engine, true);
        seed(&engine, &auth);
        let api = Counting::new(engine);
        let mut dry = options(page_size);
        dry.dry_run = true;
        let outcome = conversation::run(&api, &auth, &dry, &mut |_| {}).unwrap();
        assert_eq!(api.transacts(), 0, "a dry run writes nothing");
        assert!(outcome.apply.is_none() && outcome.verify.is_none());
        plans.push((page_size, api.queries(), outcome.plan));
    }
    let (_, _, reference) = &plans[3];
    assert_eq!(reference.counts.items_created, 5);
    for (page_size, _queries, plan) in &plans {
        assert_eq!(plan, reference, "page size {page_size}");
    }
    // 9 messages scanned one per page need 10 requests for the scan alone.
    assert!(
        plans[0].1 > plans[3].1 + 9,
        "{} vs {}",
        plans[0].1,
        plans[3].1
    );
}

#[test]
fn existing_context_and_thread_are_reused_and_never_rewritten() {
    let engine = LocalEngine::in_memory().unwrap();
    let auth = app(&engine, true);
    seed(&engine, &auth);
    // A runtime that already healed award 1: its own ids, content and status.
    let context = "0c000000-0000-4000-8000-0000000000aa";
    let thread = "07000000-0000-4000-8000-0000000000bb";
    let key = context_key(AWARD_1);
    transact(
        &engine,
        &auth,
        vec![
            json!(["update", "thread_threads", thread, {"key": key, "createdAt": "2024-12-01T00:00:00Z", "status": "streaming"}]),
            json!(["update", "thread_contexts", context, {"key": key, "createdAt": "2024-12-01T00:00:00Z", "status": "closed", "content": {"title": "keep"}}]),
            json!(["link", "thread_contexts", context, {"thread": thread}]),
            // m2 already has an item in that context (migrated from a legacy event).
            json!(["update", "thread_items", "17000000-0000-4000-8000-0000000000cc", {"channel": "whatsapp", "createdAt": "2025-02-01T10:00:00Z"}]),
            json!(["link", "thread_items", "17000000-0000-4000-8000-0000000000cc", {"context": context, "whatsappMessages": [msg(2)]}]),
        ],
    );
    let outcome = conversation::run(&engine, &auth, &options(500), &mut |_| {}).unwrap();
    let award = &outcome.plan.awards[0];
    assert_eq!(
        (award.context_id.as_str(), award.thread_id.as_str()),
        (context, thread)
    );
    assert_eq!(
        (award.context, award.thread),
        (Disposition::Existing, Disposition::Existing)
    );
    assert_eq!((award.items_created, award.items_existing), (2, 1));
    let existing = &award.items[1];
    assert_eq!(existing.item_id, "17000000-0000-4000-8000-0000000000cc");
    assert_eq!(existing.links_added, ["thread"]);
    assert_eq!(outcome.plan.counts.contexts_created, 1);
    assert!(outcome.verify.unwrap().ok);
    let row = query(
        &engine,
        &auth,
        json!({"thread_contexts": {"$": {"where": {"id": context}}}}),
    );
    assert_eq!(row["thread_contexts"][0]["status"], "closed");
    assert_eq!(
        row["thread_contexts"][0]["content"],
        json!({"title": "keep"})
    );
}

#[test]
fn an_app_without_the_target_schema_is_refused_before_any_write() {
    let engine = LocalEngine::in_memory().unwrap();
    let auth = app(&engine, false);
    seed(&engine, &auth);
    let api = Counting::new(engine);
    let error = conversation::run(&api, &auth, &options(500), &mut |_| {}).unwrap_err();
    match &error {
        ConversationError::SchemaMissing { missing, .. } => {
            assert!(missing.contains(&"thread_items.createdAt".to_string()));
            assert!(missing.contains(&"conversation_messages.event -> thread_items".to_string()));
        }
        other => panic!("{other}"),
    }
    assert_eq!(api.transacts(), 0);
    let mut dry = options(500);
    dry.dry_run = true;
    let planned = conversation::run(&api, &auth, &dry, &mut |_| {}).unwrap();
    assert_eq!(planned.plan.schema_missing.len(), 21);
    assert_eq!(planned.plan.counts.items_created, 5);
}

#[test]
fn unknown_and_malformed_tenders_get_one_clear_error() {
    let engine = LocalEngine::in_memory().unwrap();
    let auth = app(&engine, true);
    seed(&engine, &auth);
    let unknown = "7a000000-0000-4000-8000-0000000000ff";
    let error = conversation::run(&engine, &auth, &Options::new(unknown), &mut |_| {}).unwrap_err();
    assert!(
        matches!(error, ConversationError::NoAwards { .. }),
        "{error}"
    );
    assert!(error.to_string().contains(unknown), "{error}");
    let error =
        conversation::run(&engine, &auth, &Options::new("tender-1"), &mut |_| {}).unwrap_err();
    assert_eq!(error.to_string(), "tender id \"tender-1\" is not a UUID");
    // A tender with an award but no message naming it.
    let error =
        conversation::run(&engine, &auth, &Options::new(OTHER_TENDER), &mut |_| {}).unwrap_err();
    assert!(
        matches!(error, ConversationError::NoConversation { scanned: 9, .. }),
        "{error}"
    );
}

#[test]
fn an_award_with_a_legacy_context_waits_for_the_migration_and_the_orphan_gets_the_rest() {
    let engine = LocalEngine::in_memory().unwrap();
    let auth = app(&engine, true);
    let tender = "7b000000-0000-4000-8000-000000000001";
    let (owned, orphan) = (
        "b1000000-0000-4000-8000-000000000001",
        "b2000000-0000-4000-8000-000000000002",
    );
    let legacy_context = "1c000000-0000-4000-8000-000000000001";
    let legacy_event = "1e000000-0000-4000-8000-000000000001";
    let mut steps = vec![
        json!(["update", "tender_tenders", tender, {"title": "t"}]),
        json!(["update", "award_awards", owned, {"status": "awarded"}]),
        json!(["update", "award_awards", orphan, {"status": "awarded"}]),
        json!(["link", "award_awards", owned, {"tender": tender}]),
        json!(["link", "award_awards", orphan, {"tender": tender}]),
        // `owned` has its legacy context, whose event carries d1's first message.
        json!(["update", "context_contexts", legacy_context, {"key": context_key(owned), "createdAt": "2025-01-01T00:00:00Z"}]),
        json!(["update", "context_events", legacy_event, {"channel": "whatsapp", "createdAt": "2025-02-01T10:00:00Z"}]),
        json!(["link", "context_events", legacy_event, {"context": legacy_context, "whatsappMessages": [msg(11)]}]),
    ];
    steps.push(message(
        &msg(11),
        "d1",
        &format!("licitación {tender}"),
        json!("2025-02-01T10:00:00Z"),
        "inbound",
    ));
    steps.push(message(
        &msg(12),
        "d1",
        "gracias",
        json!("2025-02-01T10:01:00Z"),
        "outbound",
    ));
    steps.push(message(
        &msg(21),
        "d2",
        &format!("Licitación {tender}: ¿cotizan?"),
        json!("2025-02-02T10:00:00Z"),
        "inbound",
    ));
    // d3 names the tender but is the history of a context of another tender's award.
    let foreign_context = "1c000000-0000-4000-8000-000000000002";
    let foreign_event = "1e000000-0000-4000-8000-000000000002";
    steps.push(json!(["update", "context_contexts", foreign_context, {"key": "award_c3000000-0000-4000-8000-000000000003"}]));
    steps.push(json!(["update", "context_events", foreign_event, {"channel": "whatsapp"}]));
    steps.push(json!(["link", "context_events", foreign_event, {"context": foreign_context, "whatsappMessages": [msg(31)]}]));
    steps.push(message(
        &msg(31),
        "d3",
        &format!("también sobre {tender}"),
        json!("2025-02-05T10:00:00Z"),
        "inbound",
    ));
    steps.push(message(
        &msg(22),
        "d2",
        "sí",
        json!("2025-02-02T10:02:00Z"),
        "outbound",
    ));
    transact(&engine, &auth, steps);

    let first = conversation::run(&engine, &auth, &Options::new(tender), &mut |_| {}).unwrap();
    let attributions: Vec<(&str, Option<&str>, &str)> = first
        .plan
        .conversations
        .iter()
        .map(|c| {
            (
                c.conversation.as_str(),
                c.award_id.as_deref(),
                c.attribution,
            )
        })
        .collect();
    assert_eq!(
        attributions,
        vec![
            ("d1", Some(owned), "existing_context"),
            ("d2", Some(orphan), "single_remaining_award"),
            ("d3", None, "elsewhere"),
        ]
    );
    let skipped: Vec<(&str, &str)> = first
        .plan
        .skipped
        .iter()
        .map(|d| (d.id.as_str(), d.rule))
        .collect();
    assert_eq!(
        skipped,
        vec![
            ("d3", rules::CONVERSATION_IN_OTHER_CONTEXT),
            (owned, rules::AWARD_CONTEXT_NOT_MIGRATED)
        ]
    );
    assert_eq!(first.plan.awards.len(), 1);
    assert_eq!(first.plan.awards[0].award_id, orphan);
    assert_eq!(
        (first.plan.counts.items_created, first.plan.counts.rejected),
        (2, 0)
    );
    assert!(first.verify.unwrap().ok);
    // Nothing took the key the migrated context will need.
    let taken = query(
        &engine,
        &auth,
        json!({"thread_contexts": {"$": {"where": {"key": context_key(owned)}}}}),
    );
    assert_eq!(taken["thread_contexts"], json!([]));

    // The migration moves the legacy context (same id, same key) and its event.
    transact(
        &engine,
        &auth,
        vec![
            json!(["update", "thread_contexts", legacy_context, {"key": context_key(owned), "createdAt": "2025-01-01T00:00:00Z", "status": "open"}]),
            json!(["update", "thread_items", legacy_event, {"channel": "whatsapp", "createdAt": "2025-02-01T10:00:00Z"}]),
            json!(["link", "thread_items", legacy_event, {"context": legacy_context, "whatsappMessages": [msg(11)]}]),
        ],
    );
    let second = conversation::run(&engine, &auth, &Options::new(tender), &mut |_| {}).unwrap();
    assert_eq!(second.plan.skipped.len(), 1);
    assert_eq!(second.plan.skipped[0].id, "d3");
    let award = &second.plan.awards[0];
    assert_eq!(award.award_id, owned);
    assert_eq!(award.context_id, legacy_context);
    // The context had no thread: one is derived from its id and linked.
    assert_eq!(award.thread, Disposition::Created);
    assert_eq!(
        award.thread_id,
        derived_thread_id(&legacy_context.parse().unwrap()).to_string()
    );
    let items: Vec<(&str, Disposition)> = award
        .items
        .iter()
        .map(|i| (i.item_id.as_str(), i.disposition))
        .collect();
    let m12_item = item_of(12);
    assert_eq!(
        items,
        vec![
            (legacy_event, Disposition::Existing),
            (m12_item.as_str(), Disposition::Created)
        ]
    );
    assert_eq!(
        (
            second.plan.counts.items_created,
            second.plan.counts.items_existing
        ),
        (1, 3)
    );
    assert!(second.verify.unwrap().ok);
}
