//! Pactum's vocabulary: every string it stores in a table or sends on the wire is an enum built
//! with [`string_enum!`], so a typo is a compile error and each value has one spelling, one
//! `as_str` and one parse.

/// A stored or received string this build does not know (a newer schema, or corruption).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown status {0:?}")]
pub struct UnknownStatus(pub String);

/// Declares an enum of fixed strings: `Debug`, `Copy`, `Hash`, serde as the same strings,
/// `as_str`, `Display` and `FromStr` (refusing any other string with [`UnknownStatus`]).
macro_rules! string_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $text:literal,)+ }) => {
        $(#[$doc])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash, ::serde::Serialize, ::serde::Deserialize,
        )]
        pub enum $name {
            $($(#[$vdoc])* #[serde(rename = $text)] $variant,)+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [Self] = &[$($name::$variant,)+];

            /// The exact string the API and the store use.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }

            /// Parses [`Self::as_str`]; `None` for any other string.
            pub fn parse(value: &str) -> Option<Self> {
                value.parse().ok()
            }
        }

        /// The OpenAPI schema: a string of exactly these values. Written out rather than
        /// derived, since the derive cannot read a rename given through a macro argument.
        impl ::utoipa::PartialSchema for $name {
            fn schema() -> ::utoipa::openapi::RefOr<::utoipa::openapi::schema::Schema> {
                ::utoipa::openapi::schema::ObjectBuilder::new()
                    .schema_type(::utoipa::openapi::schema::Type::String)
                    .enum_values(Some([$($text),+]))
                    .into()
            }
        }

        impl ::utoipa::ToSchema for $name {}

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        /// Compares with a string as stored or sent (tests and JSON bodies read strings).
        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.as_str() == *other
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = $crate::vocab::UnknownStatus;

            fn from_str(s: &str) -> Result<Self, $crate::vocab::UnknownStatus> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err($crate::vocab::UnknownStatus(s.to_owned())),
                }
            }
        }
    };
}
pub(crate) use string_enum;
