use expect_test::{expect, Expect};
use instant_api::{ApiError, TransactRequest};
use serde_json::{json, Value};

use super::transact;
use crate::store::{App, Store};

/// A fixed UUID per small number, so error texts are stable.
fn id(n: u32) -> String {
    format!("00000000-0000-4000-8000-{n:012}")
}

struct Fixture {
    store: Store,
    app: App,
}

fn fixture() -> Fixture {
    let store = Store::open_in_memory().unwrap();
    let (app, _) = store.create_app("transact", false).unwrap();
    Fixture { store, app }
}

impl Fixture {
    fn run(&self, steps: Value, strict: bool) -> Result<i64, ApiError> {
        let request = TransactRequest {
            steps: steps.as_array().unwrap().clone(),
            throw_on_missing_attrs: strict,
        };
        transact(&self.store, &self.app, &request).map(|response| response.tx_id)
    }

    fn ok(&self, steps: Value) -> i64 {
        self.run(steps, false).unwrap_or_else(|err| panic!("{err}"))
    }

    fn err(&self, steps: Value) -> ApiError {
        self.run(steps, false)
            .expect_err("the transaction should fail")
    }

    /// Adds an attribute with explicit flags through an `add-attr` step.
    fn attr(&self, etype: &str, label: &str, extra: Value) {
        let mut attr = json!({
            "id": uuid::Uuid::new_v4().to_string(),
            "forward-identity": [uuid::Uuid::new_v4().to_string(), etype, label],
            "value-type": "blob",
            "cardinality": "one",
            "unique?": false,
            "index?": false,
        });
        for (key, value) in extra.as_object().unwrap() {
            attr[key] = value.clone();
        }
        self.ok(json!([["add-attr", attr]]));
    }

    /// A link `etype.label` → `target.reverse_label`.
    fn link_attr(&self, etype: &str, label: &str, target: &str, reverse: &str, extra: Value) {
        let mut flags = json!({
            "value-type": "ref",
            "cardinality": "many",
            "reverse-identity": [uuid::Uuid::new_v4().to_string(), target, reverse],
        });
        for (key, value) in extra.as_object().unwrap() {
            flags[key] = value.clone();
        }
        self.attr(etype, label, flags);
    }

    /// The stored value of `etype.label` for an entity.
    fn value(&self, etype: &str, entity: &str, label: &str) -> Option<Value> {
        let conn = self.store.conn();
        conn.query_row(
            "SELECT t.value FROM triples t JOIN attrs a ON a.attr_pk = t.attr_pk \
             WHERE t.app_pk = ?1 AND t.entity_pk = (SELECT entity_pk FROM entity_keys WHERE app_pk = ?1 AND entity_id = ?2) AND a.etype = ?3 AND a.label = ?4 AND a.deleted_at IS NULL",
            rusqlite::params![self.app.app_pk, entity, etype, label],
            |row| row.get::<_, String>(0),
        )
        .ok()
        .map(|text| serde_json::from_str(&text).unwrap())
    }

    /// Every `entity label value` triple of a namespace, sorted, plus the entity rows.
    fn dump(&self, etype: &str) -> String {
        let conn = self.store.conn();
        let mut out = Vec::new();
        let mut statement = conn
            .prepare("SELECT entity_id FROM entities WHERE app_pk = ?1 AND etype = ?2")
            .unwrap();
        for row in statement
            .query_map(rusqlite::params![self.app.app_pk, etype], |row| {
                row.get::<_, String>(0)
            })
            .unwrap()
        {
            out.push(format!("{} id", short(&row.unwrap())));
        }
        let mut statement = conn
            .prepare(
                "SELECT k.entity_id, a.label, t.value FROM triples t JOIN attrs a ON a.attr_pk = t.attr_pk \
                 JOIN entity_keys k ON k.entity_pk = t.entity_pk WHERE t.app_pk = ?1 AND a.etype = ?2",
            )
            .unwrap();
        for row in statement
            .query_map(rusqlite::params![self.app.app_pk, etype], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, String>(2)?,
                ))
            })
            .unwrap()
        {
            let (entity, label, value) = row.unwrap();
            out.push(format!("{} {label} {}", short(&entity), shorten(&value)));
        }
        out.sort();
        out.join("\n")
    }

    /// Attribute catalogue lines: `etype.label kind cardinality flags reverse inferred`.
    fn attrs(&self) -> String {
        let conn = self.store.conn();
        let mut statement = conn
            .prepare(
                "SELECT etype, label, value_type, cardinality, is_unique, is_indexed, reverse_etype, reverse_label, inferred_types, deleted_at IS NOT NULL \
                 FROM attrs WHERE app_pk = ?1 ORDER BY attr_pk",
            )
            .unwrap();
        let rows = statement
            .query_map([self.app.app_pk], |row| {
                Ok(format!(
                    "{}.{} {} {}{}{} rev={}.{} inferred={}{}",
                    row.get::<_, String>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, String>(2)?,
                    row.get::<_, String>(3)?,
                    if row.get::<_, bool>(4)? {
                        " unique"
                    } else {
                        ""
                    },
                    if row.get::<_, bool>(5)? {
                        " indexed"
                    } else {
                        ""
                    },
                    row.get::<_, Option<String>>(6)?.unwrap_or_default(),
                    row.get::<_, Option<String>>(7)?.unwrap_or_default(),
                    row.get::<_, Option<String>>(8)?.unwrap_or_default(),
                    if row.get::<_, bool>(9)? {
                        " deleted"
                    } else {
                        ""
                    },
                ))
            })
            .unwrap();
        rows.map(Result::unwrap).collect::<Vec<_>>().join("\n")
    }

    fn count(&self, table: &str) -> i64 {
        self.store
            .conn()
            .query_row(
                &format!("SELECT COUNT(*) FROM {table} WHERE app_pk = ?1"),
                [self.app.app_pk],
                |row| row.get(0),
            )
            .unwrap()
    }

    /// The error envelope with attribute ids and random entity ids replaced by placeholders.
    fn envelope(&self, error: &ApiError) -> String {
        let mut text = format!("{} {}", error.status, error.envelope());
        let conn = self.store.conn();
        let mut statement = conn
            .prepare("SELECT id, etype, label FROM attrs WHERE app_pk = ?1")
            .unwrap();
        for row in statement
            .query_map([self.app.app_pk], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, String>(2)?,
                ))
            })
            .unwrap()
        {
            let (attr_id, etype, label) = row.unwrap();
            text = text.replace(&attr_id, &format!("<{etype}.{label}>"));
        }
        text.replace("00000000-0000-4000-8000-0000000000", "#")
    }

    fn check(&self, steps: Value, expected: Expect) {
        let error = self.err(steps);
        expected.assert_eq(&self.envelope(&error));
    }
}

fn short(entity: &str) -> String {
    entity.replace("00000000-0000-4000-8000-0000000000", "#")
}

fn shorten(value: &str) -> String {
    value.replace("00000000-0000-4000-8000-0000000000", "#")
}

// ---------------------------------------------------------------------------------------------
// Steps

#[test]
fn update_creates_entities_and_attributes() {
    let f = fixture();
    let tx_id = f.ok(json!([
        ["update", "goals", id(1), {"title": "Get fit", "n": 2, "id": id(9), "meta": {"b": 1, "a": [true]}}],
        ["update", "goals", id(2), {"title": "Read"}, {"upsert": true}],
    ]));
    assert!(tx_id > 0);
    expect![[r#"
        #01 id
        #01 meta {"a":[true],"b":1}
        #01 n 2
        #01 title "Get fit"
        #02 id
        #02 title "Read""#]]
    .assert_eq(&f.dump("goals"));
    expect![[r#"
        goals.id blob one unique rev=. inferred=
        goals.title blob one rev=. inferred=["string"]
        goals.n blob one rev=. inferred=["number"]
        goals.meta blob one rev=. inferred=["json"]"#]]
    .assert_eq(&f.attrs());
    // A second transaction gets a later id; attributes are reused, values replaced.
    let next = f.ok(json!([["update", "goals", id(1), {"title": "Get fitter", "n": null}]]));
    assert!(next > tx_id);
    assert_eq!(f.value("goals", &id(1), "title"), Some(json!("Get fitter")));
    assert_eq!(f.value("goals", &id(1), "n"), Some(Value::Null));
    assert_eq!(f.count("attrs"), 4);
}

#[test]
fn all_triples_of_a_transaction_share_one_created_at() {
    let f = fixture();
    f.ok(json!([
        ["update", "goals", id(1), {"title": "a", "n": 1}],
        ["update", "todos", id(2), {"title": "b"}],
        ["link", "goals", id(1), {"todos": id(2)}],
    ]));
    let conn = f.store.conn();
    let times: i64 = conn
        .query_row(
            "SELECT COUNT(DISTINCT created_at) FROM (SELECT created_at FROM triples UNION ALL SELECT created_at FROM entities)",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(times, 1);
}

#[test]
fn create_and_update_modes() {
    let f = fixture();
    f.ok(json!([["create", "goals", id(1), {"title": "a"}]]));
    f.check(
        json!([["create", "goals", id(1), {"title": "b"}]]),
        expect![[r##"400 {"type":"validation-failed","message":"Validation failed for tx-step: Creating entities that exist: #01, #01","hint":{"data-type":"tx-step","input":[{"op":"add-triple","eid":"#01","etype":"goals","aid":"<goals.id>","value":"#01","rev-etype":null,"opts":{"mode":"create"}},{"op":"add-triple","eid":"#01","etype":"goals","aid":"<goals.title>","value":"b","rev-etype":null,"opts":{"mode":"create"}}],"errors":[{"message":"Creating entities that exist: #01, #01"}]}}"##]],
    );
    f.check(
        json!([["update", "goals", id(2), {"title": "b"}, {"upsert": false}]]),
        expect![[r##"400 {"type":"validation-failed","message":"Validation failed for tx-step: Updating entities that don't exist: #02, #02","hint":{"data-type":"tx-step","input":[{"op":"add-triple","eid":"#02","etype":"goals","aid":"<goals.id>","value":"#02","rev-etype":null,"opts":{"mode":"update"}},{"op":"add-triple","eid":"#02","etype":"goals","aid":"<goals.title>","value":"b","rev-etype":null,"opts":{"mode":"update"}}],"errors":[{"message":"Updating entities that don't exist: #02, #02"}]}}"##]],
    );
    f.ok(json!([["update", "goals", id(1), {"title": "c"}, {"upsert": false}]]));
    f.ok(json!([["merge", "goals", id(1), {"title": "d"}, {"upsert": false}]]));
    assert_eq!(f.value("goals", &id(1), "title"), Some(json!("d")));
    assert!(f.dump("goals").lines().all(|line| !line.starts_with("#02")));
}

#[test]
fn merge_is_a_deep_merge() {
    let f = fixture();
    f.ok(
        json!([["update", "docs", id(1), {"data": {"a": {"b": 1, "c": 2}, "keep": true}, "n": 5}]]),
    );
    f.ok(json!([
        ["merge", "docs", id(1), {"data": {"a": {"c": null, "d": {"e": null}}, "keep": null, "x": 1}}],
        ["merge", "docs", id(1), {"data": {"a": {"b": 3}}, "n": {"now": "object"}}],
    ]));
    assert_eq!(
        f.value("docs", &id(1), "data"),
        Some(json!({"x": 1, "a": {"b": 3, "d": {"e": null}}}))
    );
    assert_eq!(f.value("docs", &id(1), "n"), Some(json!({"now": "object"})));
    // Merging into nothing stores the patch; a non-object patch replaces the value.
    f.ok(json!([["merge", "docs", id(2), {"data": {"a": null}}]]));
    assert_eq!(f.value("docs", &id(2), "data"), Some(json!({"a": null})));
    f.ok(json!([["merge", "docs", id(2), {"data": [1, 2]}]]));
    assert_eq!(f.value("docs", &id(2), "data"), Some(json!([1, 2])));
}

#[test]
fn merging_a_link_is_refused() {
    let f = fixture();
    f.link_attr("posts", "author", "users", "posts", json!({}));
    f.check(
        json!([["merge", "posts", id(1), {"author": {"x": 1}}]]),
        expect![[r#"400 {"type":"sql-raise","message":"Raised Exception: merge operation is not supported for links","hint":{"table":null,"condition":"raise-exception","constraint":null}}"#]],
    );
    assert_eq!(f.count("entities"), 0);
}

#[test]
fn links_forward_reverse_arrays_and_unlink() {
    let f = fixture();
    f.link_attr(
        "posts",
        "author",
        "users",
        "posts",
        json!({"cardinality": "one"}),
    );
    f.link_attr("posts", "tags", "tags", "posts", json!({}));
    f.ok(json!([
        ["update", "users", id(1), {"name": "a"}],
        ["update", "users", id(2), {"name": "b"}],
        ["update", "posts", id(10), {"title": "p"}],
        ["link", "posts", id(10), {"author": id(1), "tags": [id(20), id(21)]}],
        ["link", "users", id(2), {"posts": [id(11)]}],
    ]));
    expect![[r##"
        #10 author "#01"
        #10 id
        #10 tags "#20"
        #10 tags "#21"
        #10 title "p"
        #11 author "#02""##]]
    .assert_eq(&f.dump("posts"));
    // Has-one replaces, many accumulates, unlink both directions.
    f.ok(json!([
        ["link", "posts", id(10), {"author": id(2)}],
        ["unlink", "posts", id(10), {"tags": id(20)}],
        ["unlink", "users", id(2), {"posts": id(11)}],
    ]));
    expect![[r##"
        #10 author "#02"
        #10 id
        #10 tags "#21"
        #10 title "p""##]]
    .assert_eq(&f.dump("posts"));
    let conn = f.store.conn();
    let ref_id: String = conn
        .query_row(
            "SELECT ref_id FROM triples t JOIN attrs a USING (attr_pk) WHERE a.label = 'author'",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(ref_id, id(2));
}

#[test]
fn auto_created_attributes_have_the_server_shapes() {
    let f = fixture();
    f.ok(json!([
        ["link", "goals", id(1), {"todos": id(2)}],
        ["update", "users", ["email", "a@b.c"], {"name": "a"}],
        ["update", "owner", ["handle", "joe"], {}],
        ["link", "posts", id(3), {"owner": {"handle": "joe"}}],
        ["update", "books", ["author.id", id(5)], {"title": "t"}],
    ]));
    expect![[r#"
        users.email blob one unique indexed rev=. inferred=["string"]
        owner.handle blob one unique indexed rev=. inferred=["string"]
        posts.owner ref one unique indexed rev=owner.posts inferred=["string"]
        books.author ref one unique indexed rev=author.books inferred=["string"]
        goals.id blob one unique rev=. inferred=
        goals.todos ref many rev=todos.goals inferred=["string"]
        users.id blob one unique rev=. inferred=
        users.name blob one rev=. inferred=["string"]
        owner.id blob one unique rev=. inferred=
        posts.id blob one unique rev=. inferred=
        books.id blob one unique rev=. inferred=
        books.title blob one rev=. inferred=["string"]"#]]
    .assert_eq(&f.attrs());
    // The link target is the entity the update's lookup created in the same group.
    assert!(f.dump("owner").contains("handle \"joe\""));
    assert!(f.dump("posts").contains("#03 owner"));
}

#[test]
fn throw_on_missing_attrs_lists_every_missing_attribute() {
    let f = fixture();
    f.ok(json!([["update", "goals", id(1), {"title": "a"}]]));
    let error = f
        .run(
            json!([
                ["update", "goals", id(1), {"title": "b", "myFavoriteColor": "purple"}],
                ["update", "todos", id(2), {"done": true}],
            ]),
            true,
        )
        .unwrap_err();
    expect![[r##"400 {"type":"validation-failed","message":"Validation failed for steps: Attributes are missing in your schema","hint":{"data-type":"steps","input":[["update","goals","#01",{"title":"b","myFavoriteColor":"purple"}],["update","todos","#02",{"done":true}]],"errors":[{"message":"Attributes are missing in your schema","hint":{"attributes":["goals.myFavoriteColor","todos.id","todos.done"]}}]}}"##]]
    .assert_eq(&f.envelope(&error));
    assert_eq!(f.value("goals", &id(1), "title"), Some(json!("a")));
    // With every attribute known, the strict mode writes.
    f.run(json!([["update", "goals", id(1), {"title": "c"}]]), true)
        .unwrap();
    assert_eq!(f.value("goals", &id(1), "title"), Some(json!("c")));
}

#[test]
fn delete_removes_triples_and_inbound_links() {
    let f = fixture();
    f.link_attr("posts", "author", "users", "posts", json!({}));
    f.ok(json!([
        ["update", "users", id(1), {"name": "a"}],
        ["update", "posts", id(10), {"title": "p"}],
        ["update", "posts", id(11), {"title": "q"}],
        ["link", "posts", id(10), {"author": id(1)}],
        ["link", "posts", id(11), {"author": id(1)}],
    ]));
    f.ok(json!([["delete", "users", id(1), null]]));
    assert_eq!(f.dump("users"), "");
    expect![[r#"
        #10 id
        #10 title "p"
        #11 id
        #11 title "q""#]]
    .assert_eq(&f.dump("posts"));
    // Deleting the source removes its forward links too; deleting nothing is fine.
    f.ok(json!([
        ["link", "posts", id(10), {"author": id(2)}],
        ["delete", "posts", id(10)],
        ["delete", "posts", id(99)],
    ]));
    assert_eq!(f.count("triples"), 1);
}

#[test]
fn delete_cascades_follow_on_delete_both_ways() {
    let f = fixture();
    // Deleting a user deletes their posts; deleting a post deletes its comments (reverse side).
    f.link_attr(
        "posts",
        "author",
        "users",
        "posts",
        json!({"on-delete": "cascade"}),
    );
    f.link_attr(
        "posts",
        "comments",
        "comments",
        "post",
        json!({"on-delete-reverse": "cascade"}),
    );
    f.ok(json!([
        ["update", "users", id(1), {"name": "a"}],
        ["update", "users", id(2), {"name": "b"}],
        ["update", "posts", id(10), {"title": "p"}],
        ["update", "posts", id(11), {"title": "q"}],
        ["update", "comments", id(20), {"text": "c"}],
        ["update", "comments", id(21), {"text": "d"}],
        ["link", "users", id(1), {"posts": [id(10)]}],
        ["link", "users", id(2), {"posts": [id(11)]}],
        ["link", "posts", id(10), {"comments": [id(20)]}],
        ["link", "posts", id(11), {"comments": [id(21)]}],
    ]));
    f.ok(json!([["delete", "users", id(1)]]));
    assert_eq!(f.dump("users"), "#02 id\n#02 name \"b\"");
    assert!(!f.dump("posts").contains("#10"));
    assert!(!f.dump("comments").contains("#20"));
    assert!(f.dump("comments").contains("#21 text"));
}

#[test]
fn grouping_runs_each_kind_in_order_of_first_appearance() {
    let f = fixture();
    f.ok(json!([["update", "goals", id(1), {"title": "x"}], ["delete", "goals", id(1)]]));
    assert_eq!(f.dump("goals"), "");
    f.ok(json!([["delete", "goals", id(2)], ["update", "goals", id(2), {"title": "y"}]]));
    assert_eq!(f.dump("goals"), "#02 id\n#02 title \"y\"");
    // Both updates run before the delete group, so B ends deleted.
    f.ok(json!([
        ["update", "goals", id(3), {"title": "a"}],
        ["delete", "goals", id(4)],
        ["update", "goals", id(4), {"title": "b"}],
    ]));
    assert!(f.dump("goals").contains("#03 title"));
    assert!(!f.dump("goals").contains("#04"));
}

#[test]
fn cardinality_one_keeps_the_last_write_of_a_transaction() {
    let f = fixture();
    f.attr("users", "email", json!({"unique?": true}));
    f.ok(json!([["update", "users", id(2), {"email": "x"}]]));
    // The first value of user 1 would clash with user 2, but only the last value is written.
    f.ok(json!([
        ["update", "users", id(1), {"email": "x"}],
        ["update", "users", id(1), {"email": "y"}],
    ]));
    assert_eq!(f.value("users", &id(1), "email"), Some(json!("y")));
}

#[test]
fn entities_holding_triples_before_their_row_keep_one_value_per_attribute() {
    let f = fixture();
    f.link_attr(
        "books",
        "owner",
        "people",
        "books",
        json!({"cardinality": "one"}),
    );
    // A link gives book 1 a triple but no entity row.
    f.ok(json!([["link", "books", id(1), {"owner": id(7)}]]));
    assert_eq!(f.count("entities"), 0);
    // Its row is created with the link replaced; book 2's link comes before its row.
    f.ok(json!([
        ["link", "books", id(2), {"owner": id(7)}],
        ["update", "books", id(1), {"title": "a"}],
        ["link", "books", id(1), {"owner": id(8)}],
        ["update", "books", id(2), {"title": "b"}],
    ]));
    expect![[r##"
        #01 id
        #01 owner "#08"
        #01 title "a"
        #02 id
        #02 owner "#07"
        #02 title "b""##]]
    .assert_eq(
        &f.dump("books")
            .replace("00000000-0000-4000-8000-0000000000", "#"),
    );
}

#[test]
fn checks_over_many_entities_report_them_in_step_order() {
    let f = fixture();
    f.attr("items", "name", json!({"required?": true}));
    // More entities than one batched query or insert holds.
    let n = 300;
    let steps: Vec<Value> = (1..=n)
        .map(|k| match k % 100 {
            0 => json!(["update", "items", id(n + 1 - k), {"other": k}]),
            _ => json!(["update", "items", id(n + 1 - k), {"name": k}]),
        })
        .collect();
    let error = f.err(Value::Array(steps.clone()));
    assert_eq!(
        error.message,
        format!(
            "Missing required attributes `items/name`: {}, {}, {}",
            id(201),
            id(101),
            id(1)
        )
    );
    assert_eq!(f.count("entities"), 0);
    let fixed: Vec<Value> = steps
        .iter()
        .map(|step| {
            let mut step = step.clone();
            step[3]["name"] = json!("x");
            step
        })
        .collect();
    f.ok(Value::Array(fixed));
    assert_eq!(f.count("entities"), i64::from(n));
    assert_eq!(f.count("triples"), i64::from(n) + 3);
    let creates: Vec<Value> = [150, 7, 299, 301]
        .iter()
        .map(|k| json!(["create", "items", id(*k), {"name": "y"}]))
        .collect();
    let error = f.err(Value::Array(creates));
    assert_eq!(
        error.message,
        format!(
            "Validation failed for tx-step: Creating entities that exist: {a}, {a}, {b}, {b}, {c}, {c}",
            a = id(150),
            b = id(7),
            c = id(299)
        )
    );
}

// ---------------------------------------------------------------------------------------------
// Entity ids and lookups

#[test]
fn every_eid_form_finds_the_same_entity() {
    let f = fixture();
    f.attr("users", "email", json!({"unique?": true, "index?": true}));
    f.attr("users", "id", json!({"unique?": true}));
    f.ok(json!([["update", "users", id(1), {"email": "a@b.c", "n": 0}]]));
    f.ok(json!([
        ["update", "users", ["email", "a@b.c"], {"n": 1}],
        ["merge", "users", {"email": "a@b.c"}, {"m": {"k": 1}}],
        ["update", "users", "lookup__email__\"a@b.c\"", {"o": 2}],
        ["update", "users", id(1).to_uppercase(), {"p": 3}],
    ]));
    expect![[r#"
        #01 email "a@b.c"
        #01 id
        #01 m {"k":1}
        #01 n 1
        #01 o 2
        #01 p 3"#]]
    .assert_eq(&f.dump("users"));
    // A lookup that matches nothing creates the entity with its lookup value.
    f.ok(json!([["update", "users", ["email", "new@b.c"], {"n": 5}]]));
    assert_eq!(f.count("entities"), 2);
    // JSON in an encoded lookup may contain `__`.
    f.ok(json!([["update", "users", "lookup__email__\"x__y\"", {"n": 6}]]));
    assert!(f.dump("users").contains("email \"x__y\""));
}

#[test]
fn link_id_lookups_and_lookup_link_targets() {
    let f = fixture();
    f.link_attr(
        "profiles",
        "user",
        "users",
        "profile",
        json!({"cardinality": "one", "unique?": true, "index?": true}),
    );
    f.attr("users", "email", json!({"unique?": true, "index?": true}));
    f.ok(json!([
        ["update", "users", id(1), {"email": "a@b.c"}],
        ["update", "profiles", id(10), {"bio": "x"}],
    ]));
    // Value lookups see the data as it was before the group (one SQL statement on the
    // server), so the target must exist before this transaction.
    let error = f.err(json!([
        ["update", "users", id(2), {"email": "new@b.c"}],
        ["link", "profiles", id(10), {"user": [["email", "new@b.c"]]}],
    ]));
    assert_eq!(
        error.message,
        "Validation failed for lookup: The entity for the lookup does not exist."
    );
    f.ok(json!([["link", "profiles", id(10), {"user": [["email", "a@b.c"]]}]]));
    assert_eq!(f.value("profiles", &id(10), "user"), Some(json!(id(1))));
    f.ok(json!([["update", "profiles", ["user.id", id(1)], {"bio": "y"}]]));
    assert_eq!(f.value("profiles", &id(10), "bio"), Some(json!("y")));
    // Link targets as `lookup__` strings and single-key objects.
    f.ok(json!([["unlink", "profiles", id(10), {"user": "lookup__email__\"a@b.c\""}]]));
    assert_eq!(f.value("profiles", &id(10), "user"), None);
    f.ok(json!([["link", "profiles", id(10), {"user": {"email": "a@b.c"}}]]));
    assert_eq!(f.value("profiles", &id(10), "user"), Some(json!(id(1))));
    // A bare pair is a collection of targets, as on the server: "email" is no link value.
    let error = f.err(json!([["link", "profiles", id(10), {"user": ["email", "a@b.c"]}]]));
    assert_eq!(error.message, "Linked value must be a valid uuid.");
    assert_eq!(error.hint["value"], "a@b.c");
}

#[test]
fn lookup_errors() {
    let f = fixture();
    f.attr("books", "title", json!({}));
    f.attr("users", "email", json!({"unique?": true}));
    f.link_attr("posts", "author", "users", "posts", json!({}));
    f.check(
        json!([["update", "books", ["title", "test"], {"title": "test"}]]),
        expect![[r#"400 {"type":"validation-failed","message":"Validation failed for lookup: title is not a unique attribute on books","hint":{"data-type":"lookup","input":["title","test"],"errors":[{"message":"title is not a unique attribute on books"}]}}"#]],
    );
    f.check(
        json!([["update", "books", ["test.isbn", "asdf"], {"title": "test"}]]),
        expect![[r#"400 {"type":"validation-failed","message":"Validation failed for lookup: test.isbn is not a valid lookup attribute.","hint":{"data-type":"lookup","input":["test.isbn","asdf"],"errors":[{"message":"test.isbn is not a valid lookup attribute."}]}}"#]],
    );
    f.check(
        json!([["link", "spans", id(1), {"parentSpan": "lookup__linkOn__undefined"}]]),
        expect![[r#"400 {"type":"validation-failed","message":"Validation failed for lookup: lookup value is invalid","hint":{"data-type":"lookup","input":"lookup__linkOn__undefined","errors":[{"message":"lookup value is invalid","hint":{"attribute":"linkOn","value":"undefined"}}]}}"#]],
    );
    f.check(
        json!([["update", "users", {"email": "a", "x": 1}, {"n": 1}]]),
        expect![[r#"400 {"type":"validation-failed","message":"Validation failed for lookup: lookup must be an object with a single unique attr and value.","hint":{"data-type":"lookup","input":{"email":"a","x":1},"errors":[{"message":"lookup must be an object with a single unique attr and value."}]}}"#]],
    );
    f.check(
        json!([["update", "users", ["email", "nobody"], {"email": "other"}]]),
        expect![[r#"400 {"type":"validation-failed","message":"Validation failed for lookup: Updates with lookups can only update the lookup attribute if an entity with the unique attribute value already exists.","hint":{"data-type":"lookup","input":[["<users.email>","nobody"]],"errors":[{"message":"Updates with lookups can only update the lookup attribute if an entity with the unique attribute value already exists."}]}}"#]],
    );
    f.check(
        json!([["link", "posts", id(5), {"author": "lookup__email__\"nobody\""}]]),
        expect![[r#"400 {"type":"validation-failed","message":"Validation failed for lookup: The entity for the lookup does not exist.","hint":{"data-type":"lookup","input":{"attribute-id":"<users.email>","namespace":"users","label":"email","value":"nobody"},"errors":[{"message":"The entity for the lookup does not exist."}]}}"#]],
    );
    f.attr("users", "id", json!({"unique?": true}));
    f.attr("users", "n", json!({}));
    f.check(
        json!([["update", "users", ["id", "not-a-uuid"], {"n": 1}]]),
        expect![[r#"400 {"type":"validation-failed","message":"Validation failed for tx-steps: Invalid lookup '[#uuid \"<users.id>\" \"not-a-uuid\"]'. The lookup attribute is 'users.id', but the lookup value is not a valid UUID.","hint":{"data-type":"tx-steps","input":["add-triple",["<users.id>","not-a-uuid"],"<users.id>",["<users.id>","not-a-uuid"]],"errors":[{"message":"Invalid lookup '[#uuid \"<users.id>\" \"not-a-uuid\"]'. The lookup attribute is 'users.id', but the lookup value is not a valid UUID.","in":[0,1]}]}}"#]],
    );
    // Deleting through a lookup that matches nothing is a no-op.
    f.ok(json!([["delete", "users", ["email", "nobody"]]]));
    // No failed transaction left anything behind (attributes included).
    assert_eq!(f.count("entities"), 0);
    assert_eq!(f.count("triples"), 0);
}

#[test]
fn entity_id_and_shape_errors() {
    let f = fixture();
    f.check(
        json!([["update", "goals", id(1), {"title": "t"}], ["link", "goals", "bad-id", {"todos": id(2)}]]),
        expect![[r##"400 {"type":"validation-failed","message":"Validation failed for steps: Invalid entity ID 'bad-id'. Entity IDs must be UUIDs or lookup references.","hint":{"data-type":"steps","input":[["update","goals","#01",{"title":"t"}],["link","goals","bad-id",{"todos":"#02"}]],"errors":[{"message":"Invalid entity ID 'bad-id'. Entity IDs must be UUIDs or lookup references.","in":[1,2]}]}}"##]],
    );
    f.check(
        json!([["delete", "goals", 12345]]),
        expect![[r#"400 {"type":"validation-failed","message":"Validation failed for steps: Invalid entity ID '12345'. Entity IDs must be UUIDs or lookup references.","hint":{"data-type":"steps","input":[["delete","goals",12345]],"errors":[{"message":"Invalid entity ID '12345'. Entity IDs must be UUIDs or lookup references.","in":[0,2]}]}}"#]],
    );
    let first_error = |steps: Value| f.err(steps).hint["errors"][0].clone();
    assert_eq!(
        first_error(json!([["update", 1, id(1), {"title": "moop"}]])),
        json!({"expected": "string?", "in": [0, 1]})
    );
    assert_eq!(
        first_error(json!([["update", "goals", id(1), 2]])),
        json!({"expected": "map?", "in": [0, 3]})
    );
    assert_eq!(
        first_error(json!([["add-attr", "goals", id(1), 2]])),
        json!({"expected": "map?", "in": [0, 1]})
    );
    assert_eq!(
        first_error(json!([["explode", "goals", id(1), {}]])),
        json!({"expected": ["delete-attr"], "in": [0, 0]})
    );
    assert_eq!(
        f.err(json!([["explode"]])).message,
        "Validation failed for steps"
    );
    f.check(
        json!([["update-attr", {"id": id(1)}]]),
        expect![[r#"400 {"type":"validation-failed","message":"Validation failed for action: Unsupported action update-attr","hint":{"data-type":"action","input":"update-attr","errors":[{"message":"Unsupported action update-attr","hint":{"value":"update-attr"}}]}}"#]],
    );
    // `ruleParams` is accepted and does nothing for admins.
    f.ok(json!([["ruleParams", "goals", id(1), {"k": "v"}]]));
    assert_eq!(f.count("triples"), 0);
}

// ---------------------------------------------------------------------------------------------
// Constraints

#[test]
fn unique_values_conflict_but_nulls_never_do() {
    let f = fixture();
    f.attr("users", "email", json!({"unique?": true, "index?": true}));
    f.ok(json!([
        ["update", "users", id(1), {"email": "test2@instantdb.com"}],
        ["update", "users", id(3), {"email": null}],
        ["update", "users", id(4), {"email": null}],
    ]));
    f.check(
        json!([["update", "users", id(2), {"email": "test2@instantdb.com"}]]),
        expect![[r#"400 {"type":"record-not-unique","message":"`email` is a unique attribute on `users` and an entity already exists with `users.email` = \"test2@instantdb.com\"","hint":{"record-type":"triple","attr-id":"<users.email>","etype":"users","label":"email","value":"\"test2@instantdb.com\""}}"#]],
    );
    // Re-writing one's own value is fine.
    f.ok(json!([["update", "users", id(1), {"email": "test2@instantdb.com"}]]));
}

#[test]
fn reverse_has_one_links_are_unique() {
    let f = fixture();
    f.link_attr(
        "profiles",
        "user",
        "users",
        "profile",
        json!({"cardinality": "one", "unique?": true}),
    );
    f.ok(json!([["link", "profiles", id(10), {"user": id(1)}]]));
    let error = f.err(json!([["link", "profiles", id(11), {"user": id(1)}]]));
    assert_eq!(
        (error.status, error.error_type.as_str()),
        (400, "record-not-unique")
    );
    assert_eq!(
        error.message,
        format!(
            "`user` is a unique attribute on `profiles` and an entity already exists with `profiles.user` = \"{}\"",
            id(1)
        )
    );
}

#[test]
fn checked_types_sizes_links_and_null_bytes() {
    let f = fixture();
    f.attr(
        "users",
        "email",
        json!({"unique?": true, "index?": true, "checked-data-type": "string"}),
    );
    f.attr(
        "users",
        "born",
        json!({"index?": true, "checked-data-type": "date"}),
    );
    f.attr("users", "note", json!({"index?": true}));
    f.link_attr("users", "pets", "pets", "owner", json!({}));
    f.check(
        json!([["update", "users", id(1), {"email": 10}]]),
        expect![[r##"400 {"type":"validation-failed","message":"Invalid value type for users.email. Value must be a string but the provided value type is number.","hint":{"namespace":"users","attribute":"email","value":10,"checked-data-type":"string","attr-id":"<users.email>","entity-id":"#01"}}"##]],
    );
    f.check(
        json!([["update", "users", id(1), {"born": "not a date"}]]),
        expect![[r##"400 {"type":"validation-failed","message":"Invalid value type for users.born. Value must be a date but the provided value type is string.","hint":{"namespace":"users","attribute":"born","value":"not a date","checked-data-type":"date","attr-id":"<users.born>","entity-id":"#01"}}"##]],
    );
    let long = "a".repeat(2000);
    f.check(
        json!([["update", "users", id(1), {"note": long}]]),
        expect![[r##"400 {"type":"validation-failed","message":"Value is too large for an indexed attribute.","hint":{"namespace":"users","attribute":"note","value":"\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa...","checked-data-type":null,"attr-id":"<users.note>","entity-id":"#01","value-too-large?":true}}"##]],
    );
    let error = f.err(json!([["update", "users", id(1), {"email": long}]]));
    assert_eq!(error.message, "Value is too large for a unique attribute.");
    // A link step refuses a non-id target in its shape check; an update reaches the column.
    let error = f.err(json!([["link", "users", id(1), {"pets": "Foo"}]]));
    assert_eq!(error.message, "Validation failed for steps");
    assert_eq!(error.hint["errors"][0]["in"][1], 3);
    f.check(
        json!([["update", "users", id(1), {"pets": "Foo"}]]),
        expect![[r##"400 {"type":"validation-failed","message":"Linked value must be a valid uuid.","hint":{"namespace":"users","attribute":"pets","value":"Foo","checked-data-type":null,"attr-id":"<users.pets>","entity-id":"#01"}}"##]],
    );
    f.check(
        json!([["update", "users", id(1), {"bio": {"k": "Hello\u{0}World"}}]]),
        expect![[r#"400 {"type":"validation-failed","message":"A value in the transaction contains null bytes, which cannot be stored.","hint":{"table":null,"condition":"untranslatable-character","constraint":null}}"#]],
    );
    assert_eq!(f.count("entities"), 0);
    f.ok(json!([["update", "users", id(1), {"born": "2024-02-29T12:00:00Z", "email": null}]]));
    let num: f64 = f
        .store
        .conn()
        .query_row(
            "SELECT num FROM triples t JOIN attrs a USING (attr_pk) WHERE a.label = 'born'",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(num, 1_709_208_000_000.0);
}

#[test]
fn new_entities_get_null_triples_for_indexed_attributes() {
    let f = fixture();
    f.ok(json!([["update", "users", id(1), {"name": "a"}]]));
    // Existing entities get a null for a new indexed attribute.
    f.attr(
        "users",
        "rank",
        json!({"index?": true, "checked-data-type": "number"}),
    );
    assert_eq!(f.value("users", &id(1), "rank"), Some(Value::Null));
    f.ok(json!([
        ["update", "users", id(2), {"name": "b"}],
        ["update", "users", id(3), {"rank": 3}],
    ]));
    assert_eq!(f.value("users", &id(2), "rank"), Some(Value::Null));
    assert_eq!(f.value("users", &id(3), "rank"), Some(json!(3)));
    assert_eq!(f.value("users", &id(2), "missing"), None);
}

#[test]
fn required_attributes_are_checked_at_the_end() {
    let f = fixture();
    f.attr("users", "email", json!({"required?": true}));
    f.attr("users", "name", json!({"required?": true}));
    f.link_attr(
        "posts",
        "author",
        "users",
        "posts",
        json!({"required?": true}),
    );
    f.check(
        json!([["update", "users", id(1), {"email": "a"}]]),
        expect![[r##"400 {"type":"validation-failed","message":"Missing required attribute `users/name`: #01","hint":{"records":[{"entity_id":"#01","attr_id":"<users.name>","etype":"users","label":"name","is_required":true}]}}"##]],
    );
    let error = f.err(json!([
        ["update", "users", id(1), {"email": null}],
        ["update", "users", id(2), {"other": 1}],
    ]));
    assert_eq!(
        error.message,
        format!(
            "Missing required attributes `users/email`: {a}, {b}. Missing required attributes `users/name`: {a}, {b}",
            a = id(1),
            b = id(2)
        )
    );
    // Set later in the same transaction, or deleted again: both fine.
    f.ok(json!([
        ["update", "users", id(1), {"email": "a"}],
        ["update", "users", id(1), {"name": "n"}],
        ["update", "users", id(2), {"email": "b"}],
        ["delete", "users", id(2)],
    ]));
    f.check(
        json!([["update", "posts", id(10), {"title": "t"}]]),
        expect![[r##"400 {"type":"validation-failed","message":"Missing required attribute `posts/author`: #10","hint":{"records":[{"entity_id":"#10","attr_id":"<posts.author>","etype":"posts","label":"author","is_required":true}]}}"##]],
    );
    f.ok(json!([
        ["update", "posts", id(10), {"title": "t"}],
        ["link", "posts", id(10), {"author": id(1)}],
    ]));
    // Deleting the author leaves the post without its required link.
    let error = f.err(json!([["delete", "users", id(1)]]));
    assert_eq!(
        error.message,
        format!("Missing required attribute `posts/author`: {}", id(10))
    );
}

/// A transaction of adds only proves new entities complete from what it wrote, without
/// reading them back: the last value written counts, a cardinality-many value once written
/// stays, and anything not written by this transaction is still read from the store.
#[test]
fn required_check_of_created_entities_follows_the_last_value_written() {
    let f = fixture();
    f.attr("users", "name", json!({"required?": true}));
    f.attr(
        "users",
        "tags",
        json!({"required?": true, "cardinality": "many"}),
    );
    // Written, then overwritten with null in the same transaction: missing.
    let error = f.err(json!([
        ["update", "users", id(1), {"name": "a", "tags": "x"}],
        ["update", "users", id(1), {"name": null}],
    ]));
    assert_eq!(
        error.message,
        format!("Missing required attribute `users/name`: {}", id(1))
    );
    // A null added to a cardinality-many attribute keeps the value written before it.
    f.ok(json!([
        ["update", "users", id(2), {"name": "b", "tags": "x"}],
        ["update", "users", id(2), {"tags": null}],
    ]));
    // A row created by this transaction whose required value is only in the store: read.
    f.ok(json!([["update", "users", id(3), {"name": "c", "tags": "y"}]]));
    f.ok(json!([["update", "users", id(3), {"other": 1}]]));
    // A link (an existing entity, cardinality one) replaces the stored value.
    f.link_attr(
        "posts",
        "author",
        "users",
        "posts",
        json!({"cardinality": "one"}),
    );
    f.ok(json!([
        ["update", "posts", id(10), {"title": "t"}],
        ["link", "posts", id(10), {"author": id(2)}],
    ]));
    f.ok(json!([["link", "posts", id(10), {"author": id(3)}]]));
    assert_eq!(f.value("posts", &id(10), "author"), Some(json!(id(3))));
}

#[test]
fn atomicity_a_failing_step_writes_nothing() {
    let f = fixture();
    f.attr("users", "email", json!({"unique?": true}));
    f.ok(json!([["update", "users", id(1), {"email": "a"}]]));
    let (triples, attrs, entities) = (f.count("triples"), f.count("attrs"), f.count("entities"));
    let error = f.err(json!([
        ["update", "users", id(2), {"email": "b", "brandNew": 1}],
        ["update", "todos", id(3), {"title": "x"}],
        ["delete", "users", id(1)],
        ["update", "users", id(4), {"email": "b"}],
    ]));
    assert_eq!(error.error_type, "record-not-unique");
    assert_eq!(
        (f.count("triples"), f.count("attrs"), f.count("entities")),
        (triples, attrs, entities)
    );
    assert_eq!(f.value("users", &id(1), "email"), Some(json!("a")));
}

#[test]
fn attribute_steps_and_reserved_namespaces() {
    let f = fixture();
    let attr_id = uuid::Uuid::new_v4().to_string();
    f.ok(json!([["add-attr", {
        "id": attr_id,
        "forward-identity": [uuid::Uuid::new_v4().to_string(), "goals", "title"],
        "value-type": "blob", "cardinality": "one", "unique?": false, "index?": true,
    }]]));
    f.ok(json!([["update", "goals", id(1), {"title": "t"}]]));
    f.ok(json!([["delete-attr", attr_id]]));
    assert!(f
        .attrs()
        .contains("goals.title blob one rev=. inferred=[\"string\"] deleted"));
    assert_eq!(f.value("goals", &id(1), "title"), None);
    // The name is free again.
    f.ok(json!([["update", "goals", id(1), {"title": "again"}]]));
    assert_eq!(f.value("goals", &id(1), "title"), Some(json!("again")));

    let error = f.err(json!([["update", "$secret", id(1), {"x": 1}]]));
    assert_eq!(
        (error.status, error.message.as_str()),
        (400, "Validation failed for attributes: $ is reserved for system tables. You can't create $secret")
    );
    assert_eq!(error.hint["input"]["forward-identity"][1], "$secret");
    f.ok(json!([["update", "$users", id(1), {"email": "a"}]]));
    // An attribute name taken by a link's reverse side cannot be created.
    f.link_attr("posts", "author", "users", "posts", json!({}));
    let error = f.err(json!([["update", "users", id(5), {"posts": "x"}]]));
    assert_eq!(
        (error.error_type.as_str(), error.message.as_str()),
        ("record-not-unique", "`posts` already exists on `users`")
    );
}

#[test]
fn uuid_strings_are_stored_lowercase() {
    let f = fixture();
    let upper = id(7).to_uppercase();
    f.ok(json!([["update", "docs", id(1), {"ref": upper, "nested": {"k": [upper]}}]]));
    assert_eq!(f.value("docs", &id(1), "ref"), Some(json!(id(7))));
    assert_eq!(
        f.value("docs", &id(1), "nested"),
        Some(json!({"k": [id(7)]}))
    );
}

/// Throughput of the issue's benchmark shape: batches of 500 `update` steps of 5 attributes
/// into a fresh app. Run with `cargo test -p instant-local --release -- --ignored --nocapture`.
#[test]
#[ignore]
fn write_throughput() {
    let dir = tempfile::tempdir().unwrap();
    let store = if std::env::var_os("TRANSACT_BENCH_MEMORY").is_some() {
        Store::open_in_memory().unwrap()
    } else {
        Store::open(dir.path()).unwrap()
    };
    if let Some(pragmas) = std::env::var_os("TRANSACT_BENCH_PRAGMAS") {
        store
            .conn()
            .execute_batch(pragmas.to_str().unwrap())
            .unwrap();
    }
    let (app, _) = store.create_app("bench", false).unwrap();
    let batches = 100;
    let started = std::time::Instant::now();
    for batch in 0..batches {
        let steps: Vec<Value> = (0..500)
            .map(|n| {
                json!(["update", "items", uuid::Uuid::new_v4().to_string(), {
                    "title": format!("item {batch}-{n}"),
                    "n": n,
                    "done": n % 2 == 0,
                    "tags": ["a", "b"],
                    "note": "some longer text for the note attribute",
                }])
            })
            .collect();
        let request = TransactRequest {
            steps,
            throw_on_missing_attrs: false,
        };
        transact(&store, &app, &request).unwrap();
    }
    let elapsed = started.elapsed().as_secs_f64();
    let entities = (batches * 500) as f64;
    println!(
        "{entities} entities in {elapsed:.2}s: {:.0} entity writes/s",
        entities / elapsed
    );
}

/// Values longer than a key are keyed by a digest in `triples_eav`: two large values that
/// differ only in their last byte stay two values of a cardinality-many attribute, writing one
/// again adds nothing, and a cardinality-one attribute keeps only its latest large value.
#[test]
fn large_values_are_told_apart_by_their_key() {
    let f = fixture();
    f.attr("docs", "drafts", json!({"cardinality": "many"}));
    let large = |last: char| format!("{}{last}", "x".repeat(5_000));
    let drafts = || {
        f.store
            .conn()
            .query_row(
                "SELECT COUNT(*), COUNT(DISTINCT vkey), MIN(length(value)) FROM triples t \
                 JOIN attrs a ON a.attr_pk = t.attr_pk WHERE a.label = 'drafts'",
                [],
                |row| {
                    Ok((
                        row.get::<_, i64>(0)?,
                        row.get::<_, i64>(1)?,
                        row.get::<_, i64>(2)?,
                    ))
                },
            )
            .unwrap()
    };
    f.ok(json!([["update", "docs", id(1), {"drafts": large('a'), "body": large('a')}]]));
    f.ok(json!([["update", "docs", id(1), {"drafts": large('b'), "body": large('b')}]]));
    assert_eq!(drafts(), (2, 2, 5_003));
    f.ok(json!([["update", "docs", id(1), {"drafts": large('a')}]]));
    assert_eq!(drafts(), (2, 2, 5_003));
    assert_eq!(f.value("docs", &id(1), "body"), Some(json!(large('b'))));
    assert_eq!(
        f.store
            .conn()
            .query_row(
                "SELECT COUNT(*), typeof(vkey), length(vkey) FROM triples t \
                 JOIN attrs a ON a.attr_pk = t.attr_pk WHERE a.label = 'body'",
                [],
                |row| Ok((
                    row.get::<_, i64>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, i64>(2)?
                )),
            )
            .unwrap(),
        (1, "blob".to_string(), 16)
    );
}

/// An id that already names an entity of another namespace (a migration keeps the legacy ids)
/// is new in the namespace it is created in: its values there are plain inserts, while a value
/// written in the same group for its existing namespace still replaces the stored one.
#[test]
fn an_id_created_in_a_second_namespace_keeps_one_value_per_attribute_in_each() {
    let f = fixture();
    f.ok(json!([["update", "legacy", id(1), {"title": "old", "n": 1}]]));
    f.ok(json!([
        ["update", "modern", id(1), {"title": "new"}],
        ["update", "legacy", id(1), {"title": "newer"}],
        ["update", "modern", id(1), {"title": "newest"}],
    ]));
    expect![[r##"
        #01 id
        #01 n 1
        #01 title "newer""##]]
    .assert_eq(
        &f.dump("legacy")
            .replace("00000000-0000-4000-8000-0000000000", "#"),
    );
    expect![[r##"
        #01 id
        #01 title "newest""##]]
    .assert_eq(
        &f.dump("modern")
            .replace("00000000-0000-4000-8000-0000000000", "#"),
    );
}
