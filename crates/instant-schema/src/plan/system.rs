//! The server's system catalog, as far as planning needs it.
//!
//! Every app shares a fixed set of system attributes (`$users.email`, `$files.path`, …). The
//! server strips them from a pushed schema before diffing, so a schema file that declares them
//! (as `instant-cli pull` writes it) never plans a change to them. The planner has to do the
//! same, or every app would look like it needs a system change.

use crate::model::{Cardinality, Link};

/// `[etype, label]` of every system catalog identity, forward and reverse. A desired schema's
/// attributes with one of these names are dropped before planning.
const RESERVED_IDENT_NAMES: &[(&str, &str)] = &[
    ("$users", "id"),
    ("$users", "email"),
    ("$users", "type"),
    ("$users", "imageURL"),
    ("$users", "linkedPrimaryUser"),
    ("$users", "linkedGuestUsers"),
    ("$magicCodes", "id"),
    ("$magicCodes", "codeHash"),
    ("$magicCodes", "email"),
    ("$userRefreshTokens", "id"),
    ("$userRefreshTokens", "hashedToken"),
    ("$userRefreshTokens", "$user"),
    ("$users", "$userRefreshTokens"),
    ("$oauthProviders", "id"),
    ("$oauthProviders", "name"),
    ("$oauthUserLinks", "id"),
    ("$oauthUserLinks", "sub"),
    ("$oauthUserLinks", "$user"),
    ("$users", "$oauthUserLinks"),
    ("$oauthUserLinks", "$oauthProvider"),
    ("$oauthProviders", "$oauthUserLinks"),
    ("$oauthUserLinks", "sub+$oauthProvider"),
    ("$oauthClients", "id"),
    ("$oauthClients", "$oauthProvider"),
    ("$oauthProviders", "$oauthClients"),
    ("$oauthClients", "name"),
    ("$oauthClients", "clientId"),
    ("$oauthClients", "encryptedClientSecret"),
    ("$oauthClients", "discoveryEndpoint"),
    ("$oauthClients", "meta"),
    ("$oauthClients", "redirectTo"),
    ("$oauthClients", "useSharedCredentials"),
    ("$oauthCodes", "id"),
    ("$oauthCodes", "codeHash"),
    ("$oauthCodes", "codeChallengeMethod"),
    ("$oauthCodes", "codeChallenge"),
    ("$oauthCodes", "userInfo"),
    ("$oauthCodes", "$oauthClient"),
    ("$oauthClients", "$oauthCodes"),
    ("$oauthRedirects", "id"),
    ("$oauthRedirects", "stateHash"),
    ("$oauthRedirects", "cookieHash"),
    ("$oauthRedirects", "redirectUrl"),
    ("$oauthRedirects", "redirectTo"),
    ("$oauthRedirects", "$oauthClient"),
    ("$oauthClients", "$oauthRedirects"),
    ("$oauthRedirects", "codeChallengeMethod"),
    ("$oauthRedirects", "codeChallenge"),
    ("$files", "id"),
    ("$files", "path"),
    ("$files", "size"),
    ("$files", "content-type"),
    ("$files", "content-disposition"),
    ("$files", "location-id"),
    ("$files", "key-version"),
    ("$files", "url"),
    ("$streams", "id"),
    ("$streams", "clientId"),
    ("$streams", "machineId"),
    ("$streams", "$files"),
    ("$files", "$stream"),
    ("$streams", "done"),
    ("$streams", "size"),
    ("$streams", "hashedReconnectToken"),
    ("$streams", "abortReason"),
];

/// The system links, `(forward on, has, label, reverse on, has, label)`. A desired link that is
/// exactly one of these (no `required`, no `onDelete`) is dropped before planning, as the server
/// compares the whole link definition.
const SYSTEM_LINKS: &[(&str, Cardinality, &str, &str, Cardinality, &str)] = &[
    (
        "$users",
        Cardinality::One,
        "linkedPrimaryUser",
        "$users",
        Cardinality::Many,
        "linkedGuestUsers",
    ),
    (
        "$userRefreshTokens",
        Cardinality::One,
        "$user",
        "$users",
        Cardinality::Many,
        "$userRefreshTokens",
    ),
    (
        "$oauthUserLinks",
        Cardinality::One,
        "$user",
        "$users",
        Cardinality::Many,
        "$oauthUserLinks",
    ),
    (
        "$oauthClients",
        Cardinality::One,
        "$oauthProvider",
        "$oauthProviders",
        Cardinality::Many,
        "$oauthClients",
    ),
    (
        "$oauthCodes",
        Cardinality::One,
        "$oauthClient",
        "$oauthClients",
        Cardinality::Many,
        "$oauthCodes",
    ),
    (
        "$oauthRedirects",
        Cardinality::One,
        "$oauthClient",
        "$oauthClients",
        Cardinality::Many,
        "$oauthRedirects",
    ),
    (
        "$streams",
        Cardinality::Many,
        "$files",
        "$files",
        Cardinality::One,
        "$stream",
    ),
];

/// System namespaces on which users may add their own attributes.
const EDITABLE_ETYPES: &[&str] = &["$users", "$files", "$streams"];

/// Whether `[etype, label]` names a system catalog identity. The live server can reserve more
/// names through a runtime flag; those are not known offline.
pub fn is_reserved_ident_name(etype: &str, label: &str) -> bool {
    RESERVED_IDENT_NAMES
        .iter()
        .any(|(e, l)| *e == etype && *l == label)
}

/// Whether the server hides a desired blob attribute on a `$` namespace before planning: every
/// attribute of a system namespace other than `$users`, `$files` and `$streams`, and a few
/// internal `$files`/`$streams` labels.
pub fn is_hidden_system_blob(etype: &str, label: &str) -> bool {
    if !etype.starts_with('$') {
        return false;
    }
    if !EDITABLE_ETYPES.contains(&etype) {
        return true;
    }
    match etype {
        "$files" => matches!(
            label,
            "content-type" | "content-disposition" | "size" | "location-id" | "key-version"
        ),
        "$streams" => matches!(label, "machineId" | "hashedReconnectToken"),
        _ => false,
    }
}

/// Whether a desired link is exactly a system link definition.
pub fn is_system_link(link: &Link) -> bool {
    let (f, r) = (&link.forward, &link.reverse);
    if f.required.is_some()
        || f.on_delete.is_some()
        || r.required.is_some()
        || r.on_delete.is_some()
    {
        return false;
    }
    SYSTEM_LINKS
        .iter()
        .any(|&(fon, fhas, flabel, ron, rhas, rlabel)| {
            f.on == fon
                && f.has == fhas
                && f.label == flabel
                && r.on == ron
                && r.has == rhas
                && r.label == rlabel
        })
}
