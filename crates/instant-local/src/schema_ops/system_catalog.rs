//! The system catalog every app shares (`$users`, `$files`, `$streams`, the OAuth and magic-code
//! namespaces), as the server defines it in `system_catalog.clj`.
//!
//! The server keeps these attributes in one hidden app and merges them into every app's
//! attributes; here each app gets its own copy in `attrs` with `catalog = 'system'`, so the
//! transact and query code sees them like any other attribute. Their ids are the server's own:
//! it derives them from the names with a fixed 5-bit text encoding, reproduced by
//! [`system_uuid`], so a client comparing attribute ids with the hosted service sees the same
//! values.

use instant_api::ApiError;
use rusqlite::{params, Connection};

use crate::store::sql_error;

/// One system attribute, as `make-attr` declares it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SystemAttr {
    pub etype: &'static str,
    pub label: &'static str,
    pub is_ref: bool,
    pub many: bool,
    pub unique: bool,
    pub index: bool,
    pub required: bool,
    pub checked_data_type: Option<&'static str>,
    pub reverse: Option<(&'static str, &'static str)>,
    pub on_delete: Option<&'static str>,
    pub on_delete_reverse: Option<&'static str>,
}

const BASE: SystemAttr = SystemAttr {
    etype: "",
    label: "",
    is_ref: false,
    many: false,
    unique: false,
    index: false,
    required: false,
    checked_data_type: None,
    reverse: None,
    on_delete: None,
    on_delete_reverse: None,
};

const fn id_attr(etype: &'static str) -> SystemAttr {
    SystemAttr {
        etype,
        label: "id",
        unique: true,
        index: true,
        ..BASE
    }
}

const fn blob(
    etype: &'static str,
    label: &'static str,
    unique: bool,
    index: bool,
    checked_data_type: Option<&'static str>,
) -> SystemAttr {
    SystemAttr {
        etype,
        label,
        unique,
        index,
        checked_data_type,
        ..BASE
    }
}

const fn link(
    etype: &'static str,
    label: &'static str,
    reverse: (&'static str, &'static str),
    index: bool,
) -> SystemAttr {
    SystemAttr {
        etype,
        label,
        is_ref: true,
        index,
        reverse: Some(reverse),
        on_delete: Some("cascade"),
        ..BASE
    }
}

const S: Option<&str> = Some("string");
const N: Option<&str> = Some("number");
const B: Option<&str> = Some("boolean");

/// `system-catalog/all-attrs`, in the server's order.
pub(crate) const SYSTEM_ATTRS: &[SystemAttr] = &[
    id_attr("$users"),
    blob("$users", "email", true, true, S),
    blob("$users", "type", false, false, S),
    blob("$users", "imageURL", false, false, S),
    link(
        "$users",
        "linkedPrimaryUser",
        ("$users", "linkedGuestUsers"),
        false,
    ),
    id_attr("$magicCodes"),
    blob("$magicCodes", "codeHash", false, true, S),
    blob("$magicCodes", "email", false, true, S),
    id_attr("$userRefreshTokens"),
    blob("$userRefreshTokens", "hashedToken", true, true, S),
    link(
        "$userRefreshTokens",
        "$user",
        ("$users", "$userRefreshTokens"),
        true,
    ),
    id_attr("$oauthProviders"),
    blob("$oauthProviders", "name", true, true, S),
    id_attr("$oauthUserLinks"),
    blob("$oauthUserLinks", "sub", false, true, S),
    link(
        "$oauthUserLinks",
        "$user",
        ("$users", "$oauthUserLinks"),
        true,
    ),
    // The server declares this one without `:value-type :ref`, so it is a blob that carries a
    // reverse identity; kept as declared, since clients see it in `current-attrs`.
    SystemAttr {
        etype: "$oauthUserLinks",
        label: "$oauthProvider",
        index: true,
        reverse: Some(("$oauthProviders", "$oauthUserLinks")),
        on_delete: Some("cascade"),
        ..BASE
    },
    blob("$oauthUserLinks", "sub+$oauthProvider", true, true, S),
    id_attr("$oauthClients"),
    link(
        "$oauthClients",
        "$oauthProvider",
        ("$oauthProviders", "$oauthClients"),
        false,
    ),
    blob("$oauthClients", "name", true, true, S),
    blob("$oauthClients", "clientId", false, true, None),
    blob("$oauthClients", "encryptedClientSecret", false, false, S),
    blob("$oauthClients", "discoveryEndpoint", false, false, S),
    blob("$oauthClients", "meta", false, false, None),
    blob("$oauthClients", "redirectTo", false, false, S),
    blob("$oauthClients", "useSharedCredentials", false, false, B),
    id_attr("$oauthCodes"),
    blob("$oauthCodes", "codeHash", true, true, S),
    blob("$oauthCodes", "codeChallengeMethod", false, false, S),
    blob("$oauthCodes", "codeChallenge", false, false, S),
    blob("$oauthCodes", "userInfo", false, false, None),
    link(
        "$oauthCodes",
        "$oauthClient",
        ("$oauthClients", "$oauthCodes"),
        false,
    ),
    id_attr("$oauthRedirects"),
    blob("$oauthRedirects", "stateHash", true, true, S),
    blob("$oauthRedirects", "cookieHash", false, false, S),
    blob("$oauthRedirects", "redirectUrl", false, false, S),
    blob("$oauthRedirects", "redirectTo", false, false, S),
    link(
        "$oauthRedirects",
        "$oauthClient",
        ("$oauthClients", "$oauthRedirects"),
        false,
    ),
    blob("$oauthRedirects", "codeChallengeMethod", false, false, S),
    blob("$oauthRedirects", "codeChallenge", false, false, S),
    id_attr("$files"),
    SystemAttr {
        required: true,
        ..blob("$files", "path", true, true, S)
    },
    SystemAttr {
        required: true,
        ..blob("$files", "size", false, true, N)
    },
    blob("$files", "content-type", false, true, S),
    blob("$files", "content-disposition", false, true, S),
    SystemAttr {
        required: true,
        ..blob("$files", "location-id", true, true, S)
    },
    blob("$files", "key-version", false, false, N),
    blob("$files", "url", false, false, S),
    id_attr("$streams"),
    SystemAttr {
        required: true,
        ..blob("$streams", "clientId", true, true, S)
    },
    blob("$streams", "machineId", false, false, S),
    SystemAttr {
        etype: "$streams",
        label: "$files",
        is_ref: true,
        many: true,
        unique: true,
        reverse: Some(("$files", "$stream")),
        on_delete_reverse: Some("cascade"),
        ..BASE
    },
    blob("$streams", "done", false, false, B),
    blob("$streams", "size", false, false, N),
    blob("$streams", "hashedReconnectToken", false, false, S),
    blob("$streams", "abortReason", false, false, S),
];

fn etype_shortcode(etype: &str) -> Option<&'static str> {
    Some(match etype {
        "$users" => "us",
        "$magicCodes" => "mc",
        "$userRefreshTokens" => "ur",
        "$oauthProviders" => "op",
        "$oauthUserLinks" => "ol",
        "$oauthClients" => "oc",
        "$oauthCodes" => "co",
        "$oauthRedirects" => "or",
        "$files" => "fi",
        "$streams" => "st",
        _ => return None,
    })
}

fn label_shortcode(label: &str) -> Option<&'static str> {
    Some(match label {
        "$files" => "$files",
        "$oauthClient" => "oauclient",
        "$oauthProvider" => "oprovider",
        "$stream" => "stream",
        "$user" => "user",
        "abortReason" => "abrtreasn",
        "authCode" => "authcode",
        "clientId" => "clientid",
        "codeChallenge" => "codechall",
        "codeChallengeMethod" => "cchalmeth",
        "codeHash" => "codehash",
        "content-disposition" => "cdisp",
        "content-type" => "ctype",
        "cookieHash" => "cookihash",
        "discoveryEndpoint" => "discovend",
        "done" => "done",
        "email" => "email",
        "encryptedClientSecret" => "encclisec",
        "hashedToken" => "hashedtok",
        "id" => "id",
        "imageURL" => "imageurl",
        "key-version" => "kv",
        "hashedReconnectToken" => "hashretok",
        "linkedGuestUsers" => "lgu",
        "linkedPrimaryUser" => "lpu",
        "location-id" => "lid",
        "machineId" => "machineid",
        "meta" => "meta",
        "name" => "name",
        "path" => "path",
        "redirectUrl" => "redireurl",
        "redirectTo" => "redirecto",
        "size" => "size",
        "stateHash" => "statehash",
        "sub" => "sub",
        "sub+$oauthProvider" => "subprovid",
        "type" => "type",
        "url" => "url",
        "useSharedCredentials" => "usesharcr",
        "userInfo" => "usernfo",
        _ => return None,
    })
}

/// The server's alphabet: 27 symbols, 5 bits each (note `x z y`, not `x y z`).
const NAME_CHARS: &str = "abcdefghijklmnopqrstuvwxzy/";

/// Packs up to 12 symbols into a 64-bit word, 5 bits each from the top, the rest set to 1.
fn encode_word(text: &str) -> Option<u64> {
    if text.len() > 12 {
        return None;
    }
    let mut word: u64 = 0;
    let mut bits = 0u32;
    for c in text.chars() {
        let index = NAME_CHARS.find(c)? as u64;
        word = (word << 5) | index;
        bits += 5;
    }
    let rest = 64 - bits;
    Some((word << rest) | ((1u64 << rest) - 1))
}

/// Which kind of system id: an attribute (`at`) or an identity (`id`).
#[derive(Debug, Clone, Copy)]
pub(crate) enum SystemIdKind {
    Attr,
    Ident,
}

/// The server's `encode-system-uuid`. `None` for names without a shortcode.
pub(crate) fn system_uuid(kind: SystemIdKind, etype: &str, label: &str) -> Option<String> {
    let short_etype = etype_shortcode(etype)?;
    let short_label = etype_shortcode(label).or_else(|| label_shortcode(label))?;
    let kind = match kind {
        SystemIdKind::Attr => "at",
        SystemIdKind::Ident => "id",
    };
    let high = encode_word(&format!("system{kind}"))?;
    let low = encode_word(&format!("{short_etype}/{short_label}"))?;
    Some(uuid::Uuid::from_u64_pair(high, low).to_string())
}

/// How many system attributes an app has once its catalogue is complete.
pub(crate) fn system_attr_count() -> usize {
    SYSTEM_ATTRS.len()
}

/// Adds the system attributes an app lacks. Cheap when they are all there (one count).
pub fn ensure_system_catalog(conn: &Connection, app_pk: i64) -> Result<(), ApiError> {
    let present: i64 = conn
        .prepare_cached("SELECT COUNT(*) FROM attrs WHERE app_pk = ?1 AND catalog = 'system'")
        .and_then(|mut statement| statement.query_row([app_pk], |row| row.get(0)))
        .map_err(sql_error)?;
    if present as usize >= system_attr_count() {
        return Ok(());
    }
    let mut insert = conn
        .prepare_cached(
            "INSERT OR IGNORE INTO attrs (app_pk, id, etype, label, forward_ident, reverse_etype, reverse_label, \
             reverse_ident, value_type, cardinality, is_unique, is_indexed, is_required, checked_data_type, \
             on_delete, on_delete_reverse, catalog) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, 'system')",
        )
        .map_err(sql_error)?;
    for attr in SYSTEM_ATTRS {
        let missing = || {
            ApiError::new(
                500,
                "unknown",
                format!("No system id for {}.{}", attr.etype, attr.label),
                serde_json::json!({"debug-uri": null}),
            )
        };
        let id = system_uuid(SystemIdKind::Attr, attr.etype, attr.label).ok_or_else(missing)?;
        let forward_ident =
            system_uuid(SystemIdKind::Ident, attr.etype, attr.label).ok_or_else(missing)?;
        let reverse_ident = match attr.reverse {
            Some((etype, label)) => {
                Some(system_uuid(SystemIdKind::Ident, etype, label).ok_or_else(missing)?)
            }
            None => None,
        };
        insert
            .execute(params![
                app_pk,
                id,
                attr.etype,
                attr.label,
                forward_ident,
                attr.reverse.map(|(etype, _)| etype),
                attr.reverse.map(|(_, label)| label),
                reverse_ident,
                if attr.is_ref { "ref" } else { "blob" },
                if attr.many { "many" } else { "one" },
                attr.unique,
                attr.index,
                attr.required,
                attr.checked_data_type,
                attr.on_delete,
                attr.on_delete_reverse,
            ])
            .map_err(sql_error)?;
    }
    Ok(())
}

/// Whether the server hides an attribute from `{refs, blobs}` (`attr-model/remove-hidden`):
/// system attributes outside `$users`, `$files` and `$streams`, and a few internal labels.
pub(crate) fn is_hidden(catalog_system: bool, etype: &str, label: &str) -> bool {
    (catalog_system && !matches!(etype, "$users" | "$files" | "$streams"))
        || (etype == "$files"
            && matches!(
                label,
                "content-type" | "content-disposition" | "size" | "location-id" | "key-version"
            ))
        || (etype == "$streams" && matches!(label, "machineId" | "hashedReconnectToken"))
}

/// Names users may not create (`reserved-ident-name?`): every system identity, forward or
/// reverse.
pub(crate) fn is_reserved_ident(etype: &str, label: &str) -> bool {
    SYSTEM_ATTRS.iter().any(|attr| {
        (attr.etype == etype && attr.label == label) || attr.reverse == Some((etype, label))
    })
}

/// System namespaces on which users may add attributes.
pub(crate) fn is_editable_system_etype(etype: &str) -> bool {
    matches!(etype, "$users" | "$files" | "$streams")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The inverse of [`encode_word`], to check the packing independently.
    fn decode_word(word: u64) -> String {
        let chars: Vec<char> = NAME_CHARS.chars().collect();
        (0..12)
            .map(|i| ((word >> (59 - 5 * i)) & 0x1f) as usize)
            .take_while(|&index| index != 0x1f)
            .map(|index| chars[index])
            .collect()
    }

    #[test]
    fn system_ids_decode_back_to_their_names() {
        let id = system_uuid(SystemIdKind::Attr, "$users", "email").unwrap();
        let (high, low) = uuid::Uuid::parse_str(&id).unwrap().as_u64_pair();
        assert_eq!(decode_word(high), "systemat");
        assert_eq!(decode_word(low), "us/email");
        // A label that is itself a namespace uses the namespace's shortcode.
        let id = system_uuid(SystemIdKind::Ident, "$users", "$userRefreshTokens").unwrap();
        let (_, low) = uuid::Uuid::parse_str(&id).unwrap().as_u64_pair();
        assert_eq!(decode_word(low), "us/ur");
        // Every system attribute has ids.
        for attr in SYSTEM_ATTRS {
            assert!(system_uuid(SystemIdKind::Attr, attr.etype, attr.label).is_some());
        }
        assert!(system_uuid(SystemIdKind::Attr, "posts", "title").is_none());
    }
}
