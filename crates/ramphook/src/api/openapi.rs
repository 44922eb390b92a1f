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
    modifiers(&BearerAuth)
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

pub async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
