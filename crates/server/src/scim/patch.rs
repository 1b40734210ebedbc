//! SCIM PATCH (RFC 7644 §3.5.2) on a resource's writable JSON: `add`, `replace` and `remove`,
//! with or without a path; paths may name an attribute, a sub-attribute, an extension (whole or
//! one attribute) and filter a multi-valued attribute (`emails[type eq "work"].value`).
//! Operation names are case-insensitive (Entra ID writes `Replace`).
//!
//! Must never: apply part of a request (the caller keeps the original when this fails), or
//! write what `super::clean` would not keep (the result is cleaned again).

use serde_json::{Map, Value};

use super::filter::{self, Filter};
use super::{find, invalid, Attr, Invalid, Kind};

/// `externalId`, common to every resource (RFC 7643 §3.1), written by the client.
static EXTERNAL_ID: Attr = super::simple("externalId", "string");

/// The most operations one PATCH takes.
pub const MAX_OPERATIONS: usize = 100;

/// Where an operation points, resolved against the schema.
struct Target {
    /// The extension URN the attribute lives in (`None`: the core schema).
    ext: Option<&'static str>,
    /// `None`: the whole extension.
    attr: Option<&'static Attr>,
    filter: Option<Filter>,
    sub: Option<&'static Attr>,
}

fn parse_target(kind: Kind, path: &str) -> Result<Target, Invalid> {
    let bad = |why: &str| invalid("invalidPath", format!("{path:?}: {why}"));
    let path = path.trim();
    if let Some(urn) = kind.extension(path) {
        return Ok(Target {
            ext: Some(urn),
            attr: None,
            filter: None,
            sub: None,
        });
    }
    // attr[filter].sub: cut the filter out first.
    let (head, filter, tail) = match (path.find('['), path.rfind(']')) {
        (Some(open), Some(close)) if close > open => {
            let inner =
                filter::parse(&path[open + 1..close]).map_err(|e| invalid("invalidFilter", e.0))?;
            let tail = &path[close + 1..];
            let tail = match tail.strip_prefix('.') {
                Some(t) => Some(t),
                None if tail.is_empty() => None,
                None => return Err(bad("text after the filter")),
            };
            (&path[..open], Some(inner), tail)
        }
        (None, None) => (path, None, None),
        _ => return Err(bad("unbalanced brackets")),
    };
    let parsed = filter::parse_attr_path(head).map_err(|e| bad(&e.0))?;
    if parsed.urn.is_none() && parsed.attr.eq_ignore_ascii_case("externalId") && filter.is_none() {
        return Ok(Target {
            ext: None,
            attr: Some(&EXTERNAL_ID),
            filter: None,
            sub: None,
        });
    }
    let ext = match &parsed.urn {
        Some(u) => match kind.attrs(Some(u)) {
            Some(_) => kind.extension(u),
            None => return Err(bad("no such schema")),
        },
        None => None,
    };
    let attrs = kind.attrs(ext).ok_or_else(|| bad("no such schema"))?;
    let attr = find(attrs, &parsed.attr).ok_or_else(|| bad("no such attribute"))?;
    let sub_name = match (parsed.sub.as_deref(), tail) {
        (Some(_), Some(_)) => return Err(bad("two sub-attributes")),
        (s, t) => s.or(t),
    };
    let sub = match sub_name {
        Some(s) => Some(find(attr.sub, s).ok_or_else(|| bad("no such sub-attribute"))?),
        None => None,
    };
    if attr.read_only || sub.is_some_and(|s| s.read_only) {
        return Err(invalid("mutability", format!("{path:?} is read-only")));
    }
    if filter.is_some() && !attr.multi {
        return Err(bad("only a multi-valued attribute takes a filter"));
    }
    Ok(Target {
        ext,
        attr: Some(attr),
        filter,
        sub,
    })
}

/// The object that holds the target's attribute (the resource, or its extension), made if
/// missing.
fn holder<'a>(doc: &'a mut Map<String, Value>, ext: Option<&str>) -> &'a mut Map<String, Value> {
    match ext {
        None => doc,
        Some(urn) => {
            let e = doc
                .entry(urn.to_owned())
                .or_insert_with(|| Value::Object(Map::new()));
            if !e.is_object() {
                *e = Value::Object(Map::new());
            }
            e.as_object_mut().expect("an object")
        }
    }
}

fn as_items(v: Value) -> Vec<Value> {
    match v {
        Value::Array(a) => a,
        v => vec![v],
    }
}

/// Merges `value` (an object) into `into`: each member added (`add`: multi-valued ones
/// appended) or replaced.
fn merge(
    kind: Kind,
    into: &mut Map<String, Value>,
    value: Value,
    replace: bool,
) -> Result<(), Invalid> {
    let Value::Object(members) = value else {
        return Err(invalid(
            "invalidValue",
            "an operation without a path takes an object",
        ));
    };
    for (k, v) in members {
        if let Some(urn) = kind.extension(&k) {
            let Value::Object(ext) = v else {
                return Err(invalid("invalidValue", format!("{urn} takes an object")));
            };
            for (ek, ev) in ext {
                set(kind, into, Some(urn), &ek, ev, replace)?;
            }
        } else if k.eq_ignore_ascii_case("externalId") {
            into.insert("externalId".into(), v);
        } else if k.eq_ignore_ascii_case("schemas") || k.eq_ignore_ascii_case("id") {
            continue;
        } else if let Some((urn, attr)) = split_qualified(kind, &k) {
            // Entra ID writes extension attributes as `urn:…:User:department` keys.
            set(kind, into, Some(urn), attr, v, replace)?;
        } else {
            set(kind, into, None, &k, v, replace)?;
        }
    }
    Ok(())
}

fn split_qualified(kind: Kind, key: &str) -> Option<(&'static str, &str)> {
    let at = key.rfind(':')?;
    Some((kind.extension(&key[..at])?, &key[at + 1..]))
}

fn set(
    kind: Kind,
    doc: &mut Map<String, Value>,
    ext: Option<&'static str>,
    name: &str,
    value: Value,
    replace: bool,
) -> Result<(), Invalid> {
    let attrs = kind.attrs(ext).expect("a published schema");
    if ext.is_none() && name.eq_ignore_ascii_case("externalId") {
        doc.insert("externalId".into(), value);
        return Ok(());
    }
    let Some(attr) = find(attrs, name) else {
        // Not in the schema: not kept (clients send what other services take).
        return Ok(());
    };
    if attr.read_only {
        return Ok(());
    }
    let place = holder(doc, ext);
    if attr.multi && !replace {
        let mut items = place.remove(attr.name).map(as_items).unwrap_or_default();
        for v in as_items(value) {
            if !items.contains(&v) {
                items.push(v);
            }
        }
        place.insert(attr.name.to_owned(), Value::Array(items));
    } else if attr.kind == "complex" && !attr.multi && !replace {
        let mut current = match place.remove(attr.name) {
            Some(Value::Object(o)) => o,
            _ => Map::new(),
        };
        if let Value::Object(o) = value {
            for (k, v) in o {
                current.insert(k, v);
            }
        }
        place.insert(attr.name.to_owned(), Value::Object(current));
    } else {
        place.insert(attr.name.to_owned(), value);
    }
    Ok(())
}

/// Applies one operation.
fn apply(kind: Kind, doc: &mut Map<String, Value>, op: &Value) -> Result<(), Invalid> {
    let name = filter::member(op, "op")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid("invalidSyntax", "an operation needs \"op\""))?
        .to_ascii_lowercase();
    let path = filter::member(op, "path").and_then(Value::as_str);
    let value = filter::member(op, "value").cloned();
    match (name.as_str(), path) {
        ("add" | "replace", None) => merge(
            kind,
            doc,
            value.ok_or_else(|| invalid("invalidValue", "add and replace need a value"))?,
            name == "replace",
        ),
        ("remove", None) => Err(invalid("noTarget", "remove needs a path")),
        ("add" | "replace" | "remove", Some(path)) => {
            let target = parse_target(kind, path)?;
            let value = match (name.as_str(), value) {
                ("remove", v) => v,
                (_, Some(v)) => Some(v),
                (_, None) => return Err(invalid("invalidValue", "add and replace need a value")),
            };
            on_target(kind, doc, &target, &name, value)
        }
        _ => Err(invalid(
            "invalidSyntax",
            format!("{name:?} is not an operation; use add, replace or remove"),
        )),
    }
}

fn on_target(
    kind: Kind,
    doc: &mut Map<String, Value>,
    t: &Target,
    op: &str,
    value: Option<Value>,
) -> Result<(), Invalid> {
    let Some(attr) = t.attr else {
        // The whole extension.
        let urn = t.ext.expect("an extension");
        return match op {
            "remove" => {
                doc.remove(urn);
                Ok(())
            }
            _ => {
                if op == "replace" {
                    doc.remove(urn);
                }
                let mut wrapped = Map::new();
                wrapped.insert(urn.to_owned(), value.unwrap_or(Value::Null));
                merge(kind, doc, Value::Object(wrapped), op == "replace")
            }
        };
    };
    let place = holder(doc, t.ext);
    match (&t.filter, t.sub) {
        (None, None) => match op {
            "remove" => {
                match (value, place.get_mut(attr.name)) {
                    // `remove` with a value on a multi-valued attribute: those values only
                    // (Entra ID removes group members so).
                    (Some(v), Some(Value::Array(items))) if attr.multi => {
                        let gone = as_items(v);
                        items.retain(|i| {
                            !gone.iter().any(|g| {
                                g == i
                                    || (filter::member(g, "value").is_some()
                                        && filter::member(g, "value") == filter::member(i, "value"))
                            })
                        });
                    }
                    _ => {
                        place.remove(attr.name);
                    }
                }
                Ok(())
            }
            _ => set(
                kind,
                doc,
                t.ext,
                attr.name,
                value.unwrap_or(Value::Null),
                op == "replace",
            ),
        },
        (None, Some(sub)) => {
            let v = place.entry(attr.name.to_owned()).or_insert_with(|| {
                if attr.multi {
                    Value::Array(vec![])
                } else {
                    Value::Object(Map::new())
                }
            });
            let targets: Vec<&mut Value> = match v {
                Value::Array(items) => items.iter_mut().collect(),
                other => vec![other],
            };
            for item in targets {
                if !item.is_object() {
                    *item = Value::Object(Map::new());
                }
                let o = item.as_object_mut().expect("an object");
                match op {
                    "remove" => {
                        o.remove(sub.name);
                    }
                    _ => {
                        o.insert(sub.name.to_owned(), value.clone().unwrap_or(Value::Null));
                    }
                }
            }
            Ok(())
        }
        (Some(f), sub) => {
            let Some(Value::Array(items)) = place.get_mut(attr.name) else {
                return Err(invalid(
                    "noTarget",
                    format!("no {} match the filter", attr.name),
                ));
            };
            let hits: Vec<usize> = (0..items.len())
                .filter(|i| filter::matches(&items[*i], f))
                .collect();
            if hits.is_empty() {
                return Err(invalid(
                    "noTarget",
                    format!("no {} match the filter", attr.name),
                ));
            }
            match (op, sub) {
                ("remove", None) => {
                    let mut i = 0;
                    items.retain(|_| {
                        let keep = !hits.contains(&i);
                        i += 1;
                        keep
                    });
                }
                ("remove", Some(sub)) => {
                    for i in hits {
                        if let Some(o) = items[i].as_object_mut() {
                            o.remove(sub.name);
                        }
                    }
                }
                (_, Some(sub)) => {
                    for i in hits {
                        if let Some(o) = items[i].as_object_mut() {
                            o.insert(sub.name.to_owned(), value.clone().unwrap_or(Value::Null));
                        }
                    }
                }
                (_, None) => {
                    let Some(Value::Object(with)) = value else {
                        return Err(invalid("invalidValue", "a filtered value takes an object"));
                    };
                    for i in hits {
                        if let Some(o) = items[i].as_object_mut() {
                            for (k, v) in &with {
                                o.insert(k.clone(), v.clone());
                            }
                        }
                    }
                }
            }
            Ok(())
        }
    }
}

/// Applies a PatchOp body to `doc` (a cleaned resource); the result is cleaned again.
pub fn patch(kind: Kind, doc: &Value, body: &Value) -> Result<Value, Invalid> {
    let ops = filter::member(body, "Operations")
        .and_then(Value::as_array)
        .ok_or_else(|| invalid("invalidSyntax", "a PATCH needs \"Operations\""))?;
    if ops.len() > MAX_OPERATIONS {
        return Err(invalid(
            "tooMany",
            format!("a PATCH takes at most {MAX_OPERATIONS} operations"),
        ));
    }
    let mut work = doc.as_object().cloned().unwrap_or_default();
    for op in ops {
        apply(kind, &mut work, op)?;
    }
    super::clean(kind, &Value::Object(work))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn alice() -> Value {
        json!({ "userName": "alice", "emails": [
            { "value": "a@work.test", "type": "work", "primary": true },
            { "value": "a@home.test", "type": "home" }] })
    }

    fn ops(ops: Value) -> Value {
        json!({ "schemas": [super::super::PATCH_OP], "Operations": ops })
    }

    #[test]
    fn patches_as_identity_providers_send_them() {
        let u = alice();
        let p = patch(Kind::User, &u, &ops(json!([
            { "op": "Replace", "value": { "active": false, "displayName": "Alice" } },
            { "op": "replace", "path": "emails[type eq \"work\"].value", "value": "new@work.test" },
            { "op": "add", "path": "urn:elevate:params:scim:schemas:extension:2.0:User:logins", "value": ["alice"] },
            { "op": "add", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department", "value": "Finance" },
            { "op": "remove", "path": "emails[type eq \"home\"]" },
        ]))).unwrap();
        assert_eq!(p["active"], false);
        assert_eq!(p["displayName"], "Alice");
        assert_eq!(
            p["emails"],
            json!([{ "value": "new@work.test", "type": "work", "primary": true }])
        );
        assert_eq!(
            p["urn:elevate:params:scim:schemas:extension:2.0:User"]["logins"],
            json!(["alice"])
        );
        assert_eq!(
            p["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"]["department"],
            "Finance"
        );
        // Entra ID's way with extension attributes, and removing one member by value.
        let p = patch(Kind::User, &p, &ops(json!([
            { "op": "Add", "value": { "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department": "IT" } },
            { "op": "remove", "path": "urn:elevate:params:scim:schemas:extension:2.0:User" },
        ]))).unwrap();
        assert_eq!(
            p["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"]["department"],
            "IT"
        );
        assert!(p
            .get("urn:elevate:params:scim:schemas:extension:2.0:User")
            .is_none());
        let g = json!({ "displayName": "ops", "members": [{ "value": "1" }, { "value": "2" }] });
        let g = patch(
            Kind::Group,
            &g,
            &ops(json!([
            { "op": "remove", "path": "members", "value": [{ "value": "1" }] }])),
        )
        .unwrap();
        assert_eq!(g["members"], json!([{ "value": "2" }]));
    }

    #[test]
    fn a_bad_operation_changes_nothing_and_says_why() {
        let u = alice();
        for (body, scim_type) in [
            (
                ops(json!([{ "op": "replace", "path": "id", "value": "x" }])),
                "invalidPath",
            ),
            (
                ops(json!([{ "op": "replace", "path": "groups", "value": [] }])),
                "mutability",
            ),
            (
                ops(json!([{ "op": "remove", "path": "emails[type eq \"other\"]" }])),
                "noTarget",
            ),
            (ops(json!([{ "op": "remove" }])), "noTarget"),
            (
                ops(json!([{ "op": "move", "path": "userName" }])),
                "invalidSyntax",
            ),
            (
                ops(json!([{ "op": "replace", "path": "userName", "value": null }])),
                "invalidValue",
            ),
            (json!({}), "invalidSyntax"),
        ] {
            assert_eq!(
                patch(Kind::User, &u, &body).unwrap_err().scim_type,
                scim_type,
                "{body}"
            );
        }
    }
}
