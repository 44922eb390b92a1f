//! The OpenAPI 3.1 document, generated from the handlers' annotations.

use axum::Json;
use utoipa::OpenApi;

use super::{deliveries, endpoint_actions, endpoints, error, orders, partners, validation};

#[derive(OpenApi)]
#[openapi(
    info(title = "ramphook", description = "Webhooks and validation callbacks for a crypto on/off-ramp platform"),
    paths(
        partners::create, partners::get,
        endpoints::create, endpoints::list, endpoints::get, endpoints::update, endpoints::delete,
        endpoint_actions::rotate_secret, endpoint_actions::send_test, endpoint_actions::recover,
        orders::create, orders::get, orders::append_event, orders::user_orders,
        deliveries::list, deliveries::get, deliveries::retry,
        validation::put, validation::get, validation::delete, validation::validate,
    ),
    components(schemas(error::Problem)),
    modifiers(&BearerAuth, &ProblemResponses)
)]
pub struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        openapi.security = Some(vec![SecurityRequirement::new("bearer", Vec::<String>::new())]);
    }
}

/// Every error is `application/problem+json` (CONTRACT.md §3), and every
/// `/v1` operation can answer the errors any request can meet; listing them
/// here, once, keeps the document true to what the server answers.
struct ProblemResponses;

/// Errors any `/v1` request can meet, whatever the operation.
const COMMON_ERRORS: [(&str, &str); 6] = [
    ("400", "Malformed request: JSON syntax, path or query (`bad_request`)"),
    ("401", "Missing or wrong bearer token (`unauthorized`)"),
    ("404", "No such resource, or another partner's (`not_found`)"),
    ("422", "Well-formed but invalid input (`invalid_input`)"),
    (
        "429",
        "Too many requests for this API key (`rate_limited`); see `Retry-After`",
    ),
    ("503", "The database is unavailable (`unavailable`)"),
];

impl utoipa::Modify for ProblemResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
        let problem = |description: &str| {
            RefOr::T(
                ResponseBuilder::new()
                    .description(description)
                    .content(
                        "application/problem+json",
                        ContentBuilder::new()
                            .schema(Some(Ref::from_schema_name("Problem")))
                            .build(),
                    )
                    .build(),
            )
        };
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ];
            for operation in operations.into_iter().flatten() {
                let responses = &mut operation.responses.responses;
                for (status, response) in responses.iter_mut() {
                    if status.as_str() >= "400" {
                        let description = match response {
                            RefOr::T(r) => r.description.clone(),
                            RefOr::Ref(_) => String::from("Error"),
                        };
                        *response = problem(&description);
                    }
                }
                let mut errors: Vec<(&str, &str)> = COMMON_ERRORS.to_vec();
                if operation.request_body.is_some() {
                    errors.push((
                        "413",
                        "The body is larger than RAMPHOOK_MAX_BODY_BYTES (`payload_too_large`)",
                    ));
                }
                for (status, description) in errors {
                    responses
                        .entry(status.to_owned())
                        .or_insert_with(|| problem(description));
                }
            }
        }
    }
}

pub async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
