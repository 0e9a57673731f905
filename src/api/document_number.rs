//! Integers a client copies from a document it signed (`deadline`, `cumulative_units`, `units`,
//! `chain_id`). The typed-data documents carry them as decimal strings (`"1735689600"`), so a
//! request may send either that string or a JSON number; anything else is a 422 naming the field.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{
    KnownFormat, ObjectBuilder, OneOfBuilder, Schema, SchemaFormat, Type,
};

use super::error::{ApiError, ApiResult};

/// A non-negative 64-bit integer as a JSON number or a decimal string. Read any JSON value, so
/// that a wrong one is refused by [`DocumentNumber::get`] with the field's name rather than by
/// the deserializer's wording.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(transparent)]
pub struct DocumentNumber(Value);

impl DocumentNumber {
    /// The value, or 422 `validation_error` naming `field` when it is not a whole number from 0
    /// to 2^64 − 1 (as a number, or as a string of decimal digits).
    pub fn get(&self, field: &str) -> ApiResult<u64> {
        let parsed = match &self.0 {
            Value::Number(number) => number.as_u64(),
            Value::String(text) if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) => {
                text.parse().ok()
            }
            _ => None,
        };
        parsed.ok_or_else(|| {
            ApiError::validation(
                field,
                format!(
                    "`{field}` must be a whole number from 0 to 2^64 − 1, as a JSON number or a \
                     decimal string"
                ),
            )
        })
    }
}

impl From<u64> for DocumentNumber {
    fn from(value: u64) -> Self {
        DocumentNumber(value.into())
    }
}

impl utoipa::PartialSchema for DocumentNumber {
    fn schema() -> RefOr<Schema> {
        OneOfBuilder::new()
            .description(Some(
                "A whole number from 0 to 2^64 − 1: a JSON number, or the decimal string the \
                 signed document carries",
            ))
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
                    .minimum(Some(0)),
            )
            .item(ObjectBuilder::new().schema_type(Type::String).pattern(Some("^[0-9]{1,20}$")))
            .into()
    }
}

impl utoipa::ToSchema for DocumentNumber {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("DocumentNumber")
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::DocumentNumber;

    fn read(value: serde_json::Value) -> Result<u64, String> {
        let number: DocumentNumber = serde_json::from_value(value).unwrap();
        number.get("deadline").map_err(|e| e.details.unwrap()["field"].to_string())
    }

    #[test]
    fn numbers_and_decimal_strings_are_read_alike() {
        assert_eq!(read(json!(1_735_689_600u64)), Ok(1_735_689_600));
        assert_eq!(read(json!("1735689600")), Ok(1_735_689_600));
        assert_eq!(read(json!("18446744073709551615")), Ok(u64::MAX));
    }

    #[test]
    fn anything_else_names_the_field() {
        for bad in [
            json!("-1"),
            json!(-1),
            json!("18446744073709551616"),
            json!("12a"),
            json!(""),
            json!(" 1"),
            json!(1.5),
            json!(true),
            json!(null),
        ] {
            assert_eq!(read(bad.clone()), Err("\"deadline\"".into()), "{bad}");
        }
    }
}
