//! SCIM 2.0 (RFC 7643/7644) as Elevate speaks it, without HTTP or storage: the schemas it
//! publishes (one description drives `/Schemas`, input checking and PATCH), filters, PATCH,
//! `attributes`/`excludedAttributes`, and the mapping of a User to a person in the directory.
//!
//! Must never: keep an attribute the published schema does not describe, or let a client write
//! a read-only one (`id`, `meta`, `groups`).

pub mod filter;
pub mod patch;

use serde_json::{json, Map, Value};

pub const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
pub const GROUP: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
pub const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
/// Elevate's own: the login names a person uses on devices, and their Slack ids.
pub const ELEVATE: &str = "urn:elevate:params:scim:schemas:extension:2.0:User";
pub const LIST: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
pub const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
pub const ERROR: &str = "urn:ietf:params:scim:api:messages:2.0:Error";
/// Largest resource kept (its JSON).
pub const MAX_RESOURCE: usize = 64 * 1024;

/// One attribute as a schema describes it.
#[derive(Debug, Clone, Copy)]
pub struct Attr {
    pub name: &'static str,
    pub kind: &'static str,
    pub multi: bool,
    pub required: bool,
    pub read_only: bool,
    pub sub: &'static [Attr],
    /// For references: what they point to.
    pub refers_to: &'static [&'static str],
}

pub(crate) const fn simple(name: &'static str, kind: &'static str) -> Attr {
    Attr {
        name,
        kind,
        multi: false,
        required: false,
        read_only: false,
        sub: &[],
        refers_to: &[],
    }
}

const EMAIL_SUB: &[Attr] = &[
    simple("value", "string"),
    simple("type", "string"),
    simple("primary", "boolean"),
];
const GROUP_REF_SUB: &[Attr] = &[
    Attr {
        read_only: true,
        ..simple("value", "string")
    },
    Attr {
        read_only: true,
        ..simple("display", "string")
    },
];
const MANAGER_SUB: &[Attr] = &[
    simple("value", "string"),
    Attr {
        refers_to: &["User"],
        ..simple("$ref", "reference")
    },
];
const MEMBER_SUB: &[Attr] = &[
    simple("value", "string"),
    Attr {
        refers_to: &["User"],
        ..simple("$ref", "reference")
    },
];

pub const USER_ATTRS: &[Attr] = &[
    Attr {
        required: true,
        ..simple("userName", "string")
    },
    simple("displayName", "string"),
    simple("active", "boolean"),
    Attr {
        multi: true,
        sub: EMAIL_SUB,
        ..simple("emails", "complex")
    },
    Attr {
        multi: true,
        read_only: true,
        sub: GROUP_REF_SUB,
        ..simple("groups", "complex")
    },
];
pub const ENTERPRISE_ATTRS: &[Attr] = &[
    simple("department", "string"),
    Attr {
        sub: MANAGER_SUB,
        ..simple("manager", "complex")
    },
];
pub const ELEVATE_ATTRS: &[Attr] = &[
    Attr {
        multi: true,
        ..simple("logins", "string")
    },
    Attr {
        multi: true,
        ..simple("slack", "string")
    },
];
pub const GROUP_ATTRS: &[Attr] = &[
    Attr {
        required: true,
        ..simple("displayName", "string")
    },
    Attr {
        multi: true,
        sub: MEMBER_SUB,
        ..simple("members", "complex")
    },
];

/// Which resource a document is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    User,
    Group,
}

impl Kind {
    pub fn core(self) -> &'static str {
        match self {
            Kind::User => USER,
            Kind::Group => GROUP,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::User => "User",
            Kind::Group => "Group",
        }
    }

    /// (schema URN, its attributes): the core schema first (`None`), then the extensions.
    pub fn schemas(self) -> &'static [(Option<&'static str>, &'static [Attr])] {
        match self {
            Kind::User => &[
                (None, USER_ATTRS),
                (Some(ENTERPRISE), ENTERPRISE_ATTRS),
                (Some(ELEVATE), ELEVATE_ATTRS),
            ],
            Kind::Group => &[(None, GROUP_ATTRS)],
        }
    }

    /// The attributes of schema `urn` (`None`: the core schema).
    pub fn attrs(self, urn: Option<&str>) -> Option<&'static [Attr]> {
        let urn = urn.filter(|u| !u.eq_ignore_ascii_case(self.core()));
        self.schemas()
            .iter()
            .find(|(u, _)| match (u, urn) {
                (None, None) => true,
                (Some(a), Some(b)) => a.eq_ignore_ascii_case(b),
                _ => false,
            })
            .map(|(_, a)| *a)
    }

    /// The extension URN `text` names, in its published spelling.
    pub fn extension(self, text: &str) -> Option<&'static str> {
        self.schemas()
            .iter()
            .filter_map(|(u, _)| *u)
            .find(|u| u.eq_ignore_ascii_case(text))
    }
}

/// An attribute by name, whatever its case.
pub fn find(attrs: &'static [Attr], name: &str) -> Option<&'static Attr> {
    attrs.iter().find(|a| a.name.eq_ignore_ascii_case(name))
}

/// Why a document is refused (SCIM's `scimType` and a message).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Invalid {
    pub scim_type: &'static str,
    pub message: String,
}

pub fn invalid(scim_type: &'static str, message: impl Into<String>) -> Invalid {
    Invalid {
        scim_type,
        message: message.into(),
    }
}

/// Keeps what the schema describes of `value` for `attr`, in its published spelling, checked
/// for type; read-only attributes and unknown ones are dropped (clients send both).
fn clean_value(attr: &Attr, value: &Value) -> Result<Option<Value>, Invalid> {
    if value.is_null() {
        return Ok(None);
    }
    if attr.multi {
        let items: Vec<&Value> = match value {
            Value::Array(a) => a.iter().collect(),
            v => vec![v],
        };
        let mut out = Vec::new();
        for item in items {
            if let Some(v) = clean_single(attr, item)? {
                out.push(v);
            }
        }
        return Ok((!out.is_empty()).then_some(Value::Array(out)));
    }
    clean_single(attr, value)
}

fn clean_single(attr: &Attr, value: &Value) -> Result<Option<Value>, Invalid> {
    let wrong = || {
        invalid(
            "invalidValue",
            format!("{} must be a {}", attr.name, attr.kind),
        )
    };
    Ok(Some(match attr.kind {
        "string" | "reference" => match value {
            Value::String(s) => Value::String(s.clone()),
            _ => return Err(wrong()),
        },
        "boolean" => match value {
            Value::Bool(b) => Value::Bool(*b),
            // Some identity providers send "True"/"False".
            Value::String(s) if s.eq_ignore_ascii_case("true") => Value::Bool(true),
            Value::String(s) if s.eq_ignore_ascii_case("false") => Value::Bool(false),
            _ => return Err(wrong()),
        },
        "complex" => {
            let Value::Object(o) = value else {
                return Err(wrong());
            };
            let mut out = Map::new();
            for (k, v) in o {
                if let Some(sub) = find(attr.sub, k) {
                    if sub.read_only {
                        continue;
                    }
                    if let Some(v) = clean_value(sub, v)? {
                        out.insert(sub.name.to_owned(), v);
                    }
                }
            }
            if out.is_empty() {
                return Ok(None);
            }
            Value::Object(out)
        }
        _ => return Err(wrong()),
    }))
}

/// The writable part of a resource as a client sent it: known attributes in their published
/// spelling, extensions under their URN, `externalId` kept; everything else dropped.
pub fn clean(kind: Kind, doc: &Value) -> Result<Value, Invalid> {
    let Value::Object(o) = doc else {
        return Err(invalid("invalidSyntax", "a resource is a JSON object"));
    };
    let mut out = Map::new();
    for (k, v) in o {
        if k.eq_ignore_ascii_case("externalId") {
            match v {
                Value::String(s) => {
                    out.insert("externalId".into(), Value::String(s.clone()));
                }
                Value::Null => {}
                _ => return Err(invalid("invalidValue", "externalId must be a string")),
            }
        } else if let Some(urn) = kind.extension(k) {
            let attrs = kind.attrs(Some(urn)).expect("a published extension");
            let Value::Object(ext) = v else {
                return Err(invalid("invalidValue", format!("{urn} must be an object")));
            };
            let mut inner = Map::new();
            for (ek, ev) in ext {
                if let Some(a) = find(attrs, ek) {
                    if let Some(v) = clean_value(a, ev)? {
                        inner.insert(a.name.to_owned(), v);
                    }
                }
            }
            if !inner.is_empty() {
                out.insert(urn.to_owned(), Value::Object(inner));
            }
        } else if let Some(a) = find(kind.attrs(None).expect("core"), k) {
            if a.read_only {
                continue;
            }
            if let Some(v) = clean_value(a, v)? {
                out.insert(a.name.to_owned(), v);
            }
        }
    }
    for a in kind.attrs(None).expect("core") {
        if a.required && !out.contains_key(a.name) {
            return Err(invalid("invalidValue", format!("{} is required", a.name)));
        }
    }
    if serde_json::to_vec(&out).map_or(0, |v| v.len()) > MAX_RESOURCE {
        return Err(invalid(
            "invalidValue",
            format!("a resource may be at most {MAX_RESOURCE} bytes"),
        ));
    }
    Ok(Value::Object(out))
}

/// `attributes` / `excludedAttributes`: which top-level attributes of `resource` to return
/// (`id`, `schemas` and `meta` always are, as is what the schema says is returned always).
pub fn project(resource: Value, attributes: Option<&str>, excluded: Option<&str>) -> Value {
    let Value::Object(o) = resource else {
        return resource;
    };
    let names = |list: &str| -> Vec<String> {
        list.split(',')
            .map(|a| a.trim().to_ascii_lowercase())
            .filter(|a| !a.is_empty())
            .collect()
    };
    let always = |k: &str| {
        ["id", "schemas", "meta"]
            .iter()
            .any(|a| k.eq_ignore_ascii_case(a))
    };
    // `urn:...:User:department` keeps the extension; `emails.value` keeps `emails`.
    let named = |list: &[String], k: &str| {
        let k = k.to_ascii_lowercase();
        list.iter().any(|a| {
            let top = filter::parse_attr_path(a)
                .map(|p| match &p.urn {
                    Some(u) if !u.starts_with("urn:ietf:params:scim:schemas:core:") => u.clone(),
                    _ => p.attr.to_ascii_lowercase(),
                })
                .unwrap_or_else(|_| a.clone());
            top == k || a == &k
        })
    };
    let out: Map<String, Value> = match (attributes.map(names), excluded.map(names)) {
        (Some(keep), _) if !keep.is_empty() => o
            .into_iter()
            .filter(|(k, _)| always(k) || named(&keep, k))
            .collect(),
        (_, Some(drop)) if !drop.is_empty() => o
            .into_iter()
            .filter(|(k, _)| always(k) || !named(&drop, k))
            .collect(),
        _ => o,
    };
    Value::Object(out)
}

fn attr_json(a: &Attr) -> Value {
    let mut v = json!({
        "name": a.name,
        "type": a.kind,
        "multiValued": a.multi,
        "description": "",
        "required": a.required,
        "caseExact": false,
        "mutability": if a.read_only { "readOnly" } else { "readWrite" },
        "returned": "default",
        "uniqueness": if a.name == "userName" { "server" } else { "none" },
    });
    if !a.sub.is_empty() {
        v["subAttributes"] = Value::Array(a.sub.iter().map(attr_json).collect());
    }
    if a.kind == "reference" {
        v["referenceTypes"] = json!(a.refers_to);
    }
    v
}

/// One schema as `/Schemas` shows it.
pub fn schema_json(urn: &str, name: &str, attrs: &[Attr], base: &str) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Schema"],
        "id": urn,
        "name": name,
        "description": name,
        "attributes": attrs.iter().map(attr_json).collect::<Vec<_>>(),
        "meta": { "resourceType": "Schema", "location": format!("{base}/Schemas/{urn}") },
    })
}

/// Every schema Elevate publishes.
pub fn schemas(base: &str) -> Vec<Value> {
    vec![
        schema_json(USER, "User", USER_ATTRS, base),
        schema_json(GROUP, "Group", GROUP_ATTRS, base),
        schema_json(ENTERPRISE, "EnterpriseUser", ENTERPRISE_ATTRS, base),
        schema_json(ELEVATE, "ElevateUser", ELEVATE_ATTRS, base),
    ]
}

/// The resource types (`/ResourceTypes`).
pub fn resource_types(base: &str) -> Vec<Value> {
    vec![
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ResourceType"],
            "id": "User", "name": "User", "endpoint": "/Users", "description": "People",
            "schema": USER,
            "schemaExtensions": [
                { "schema": ENTERPRISE, "required": false },
                { "schema": ELEVATE, "required": false },
            ],
            "meta": { "resourceType": "ResourceType", "location": format!("{base}/ResourceTypes/User") },
        }),
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ResourceType"],
            "id": "Group", "name": "Group", "endpoint": "/Groups", "description": "Groups of people",
            "schema": GROUP,
            "schemaExtensions": [],
            "meta": { "resourceType": "ResourceType", "location": format!("{base}/ResourceTypes/Group") },
        }),
    ]
}

/// `/ServiceProviderConfig`.
pub fn service_provider_config(base: &str) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
        "documentationUri": "https://github.com/elevate/elevate/blob/main/docs/people.md",
        "patch": { "supported": true },
        "bulk": { "supported": false, "maxOperations": 0, "maxPayloadSize": 0 },
        "filter": { "supported": true, "maxResults": 1000 },
        "changePassword": { "supported": false },
        "sort": { "supported": false },
        "etag": { "supported": false },
        "authenticationSchemes": [{
            "type": "oauthbearertoken", "name": "Bearer token",
            "description": "A token per identity provider: elevatectl directory scim-token PROVIDER",
            "primary": true,
        }],
        "meta": { "resourceType": "ServiceProviderConfig", "location": format!("{base}/ServiceProviderConfig") },
    })
}

/// A SCIM error body.
pub fn error_json(status: u16, scim_type: Option<&str>, detail: &str) -> Value {
    let mut v = json!({ "schemas": [ERROR], "status": status.to_string(), "detail": detail });
    if let Some(t) = scim_type {
        v["scimType"] = Value::String(t.to_owned());
    }
    v
}

/// A list response.
pub fn list(resources: Vec<Value>, total: usize, start: usize) -> Value {
    json!({
        "schemas": [LIST],
        "totalResults": total,
        "startIndex": start,
        "itemsPerPage": resources.len(),
        "Resources": resources,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_resource_keeps_what_the_schema_describes_in_its_spelling() {
        let doc = json!({ "schemas": [USER], "USERNAME": "alice", "id": "forged",
            "title": "Dr", "active": "False", "groups": [{ "value": "g" }],
            "emails": [{ "Value": "a@x.test", "primary": true, "weird": 1 }],
            "urn:ELEVATE:params:scim:schemas:extension:2.0:User": { "Logins": ["alice", "root2@device:web-1"] } });
        let clean = clean(Kind::User, &doc).unwrap();
        assert_eq!(
            clean,
            json!({ "userName": "alice", "active": false,
                "emails": [{ "value": "a@x.test", "primary": true }],
                "urn:elevate:params:scim:schemas:extension:2.0:User": { "logins": ["alice", "root2@device:web-1"] } })
        );
        assert_eq!(
            super::clean(Kind::User, &json!({ "displayName": "x" }))
                .unwrap_err()
                .scim_type,
            "invalidValue"
        );
        assert!(super::clean(Kind::User, &json!({ "userName": 5 })).is_err());
    }

    #[test]
    fn attributes_and_excluded_attributes_pick_top_level_members() {
        let r = json!({ "id": "1", "schemas": [], "meta": {}, "userName": "a", "displayName": "A",
                        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": { "department": "x" } });
        let only = project(r.clone(), Some("displayName"), None);
        assert_eq!(only.as_object().unwrap().len(), 4);
        assert!(only.get("displayName").is_some() && only.get("userName").is_none());
        let ext = project(r.clone(), Some(&format!("{ENTERPRISE}:department")), None);
        assert!(ext.get(ENTERPRISE).is_some());
        let without = project(r, None, Some("displayName"));
        assert!(without.get("displayName").is_none() && without.get("userName").is_some());
    }
}
