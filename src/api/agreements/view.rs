//! The agreement routes' own response: a page of agreements (one agreement is the shared
//! [`Agreement`] view).

use serde::Serialize;
use utoipa::ToSchema;

use crate::api::agreement_view::Agreement;

/// A page of an agent's agreements.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AgreementList {
    /// Newest first.
    pub agreements: Vec<Agreement>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}
