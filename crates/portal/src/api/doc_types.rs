//! Closed sets of the JSON API as schema enums. The handlers parse these values with the domain
//! types (`Role`, `TokenScope`, `MessageStatus`, the CRL reasons); these types only state the sets
//! in the OpenAPI document, and a unit test checks each against its parser.

#![allow(dead_code)] // schema-only types

use serde::Serialize;
use utoipa::ToSchema;

/// A portal role.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RoleName {
    User,
    Admin,
}

/// An API token scope: `read` (the message API) or `admin` (the admin API as well).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ScopeName {
    Read,
    Admin,
}

/// Where a message is in its life.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum StatusName {
    Queued,
    Delivered,
    Failed,
}

/// An RFC 5280 revocation reason (any letter case is accepted).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum RevocationReason {
    Unspecified,
    KeyCompromise,
    CACompromise,
    AffiliationChanged,
    Superseded,
    CessationOfOperation,
    CertificateHold,
    RemoveFromCRL,
    PrivilegeWithdrawn,
    AACompromise,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names<T: Serialize>(all: &[T]) -> Vec<String> {
        all.iter()
            .map(|v| {
                serde_json::to_value(v)
                    .unwrap()
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect()
    }

    /// Every name the schema lists is one the server parses.
    #[test]
    fn schema_enums_are_what_the_parsers_accept() {
        for n in names(&[RoleName::User, RoleName::Admin]) {
            msgrelay_core::Role::parse(&n).unwrap();
        }
        for n in names(&[ScopeName::Read, ScopeName::Admin]) {
            msgrelay_store::TokenScope::parse(&n).unwrap();
        }
        for n in names(&[
            StatusName::Queued,
            StatusName::Delivered,
            StatusName::Failed,
        ]) {
            msgrelay_core::MessageStatus::parse(&n).unwrap();
        }
        let reasons = names(&[
            RevocationReason::Unspecified,
            RevocationReason::KeyCompromise,
            RevocationReason::CACompromise,
            RevocationReason::AffiliationChanged,
            RevocationReason::Superseded,
            RevocationReason::CessationOfOperation,
            RevocationReason::CertificateHold,
            RevocationReason::RemoveFromCRL,
            RevocationReason::PrivilegeWithdrawn,
            RevocationReason::AACompromise,
        ]);
        assert_eq!(
            reasons.join(","),
            "unspecified,keyCompromise,cACompromise,affiliationChanged,superseded,cessationOfOperation,certificateHold,removeFromCRL,privilegeWithdrawn,aACompromise"
        );
    }
}
