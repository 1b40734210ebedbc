//! Enrolled devices and the standing rights each reported as needing a person.
//!
//! Must never: show what a device reported unescaped.

use super::*;

pub(super) struct DeviceCard {
    name: String,
    tags: String,
    last_seen: String,
    /// "revoked <when> by <admin>", for a revoked device.
    revoked: Option<String>,
    /// (reported, what, user, right, to do)
    rights: Vec<(String, String, String, String, String)>,
}

#[derive(Template)]
#[template(path = "devices.html")]
pub(super) struct DevicesPage {
    signed_in: Option<String>,
    csrf: String,
    flash: Option<String>,
    rows: Vec<DeviceCard>,
}

pub(super) async fn devices(State(app): State<App>, user: PortalUser) -> Response {
    let principal = user.principal();
    let devices = match app.devices(&principal).await {
        Ok(d) => d,
        Err(e) => return page_error(e),
    };
    let mut rows = Vec::with_capacity(devices.len());
    for d in devices {
        let rights = match app.device_rights(&principal, &d.name).await {
            Ok(r) => r,
            Err(e) => return page_error(e),
        };
        rows.push(DeviceCard {
            name: visible(&d.name),
            tags: visible(&d.tags.join(", ")),
            last_seen: d.last_seen_at.map_or("never".into(), when),
            revoked: d
                .revoked
                .map(|(at, by)| format!("revoked {} by {}", when(at), visible(&by))),
            rights: rights
                .into_iter()
                .map(|r| {
                    (
                        when(r.at),
                        visible(&r.action),
                        visible(&r.user),
                        visible(&r.right),
                        visible(&r.message),
                    )
                })
                .collect(),
        });
    }
    page(DevicesPage {
        signed_in: Some(user.account.name.clone()),
        csrf: user.sign_in.csrf.clone(),
        flash: None,
        rows,
    })
}
