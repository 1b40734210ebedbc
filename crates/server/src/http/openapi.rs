//! The OpenAPI 3.1 document of API v1, generated from the handlers' annotations. The committed
//! copy is `docs/openapi.json`; a test fails when it drifts from the code.
//!
//! Must never: be edited by hand (regenerate with `elevate-server openapi > docs/openapi.json`).

use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::api;

#[derive(OpenApi)]
#[openapi(
    info(title = "Elevate API", version = "1", description = "Zero standing privileges for Linux fleets: requests, approvals, policies, devices and the audit chain."),
    paths(
        api::health, api::ready, api::create_token, api::whoami, api::list_tokens, api::revoke_token,
        api::disable_account, api::enable_account, api::remove_account, api::create_enrol_token, api::enrol,
        api::list_devices, api::device_rights, api::revoke_device, api::apply_policy, api::list_policies, api::current_policy, api::show_policy,
        api::diff_policies, api::policy_bundle, api::test_policy, api::create_request, api::list_requests,
        api::show_request, api::wait_request, api::approve_request, api::deny_request, api::cancel_request,
        api::start_request, api::finish_request, api::audit_page, api::ingest_audit, api::verify_audit,
        api::export_audit, api::inspect_challenge, api::respond_offline, api::list_deliveries,
        api::show_delivery, api::list_people, api::show_person, api::put_person, api::remove_person,
        api::import_directory, api::report_device_users, api::create_scim_token,
        api::import_observations, api::show_report, api::show_evidence,
    ),
    modifiers(&BearerAuth)
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// The document as pretty JSON with a final newline.
pub fn document() -> String {
    let mut text = ApiDoc::openapi()
        .to_pretty_json()
        .expect("the OpenAPI document serialises");
    text.push('\n');
    text
}
