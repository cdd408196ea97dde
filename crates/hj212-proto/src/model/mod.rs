//! The typed vocabulary of HJ 212: command codes, system codes, flags, field kinds, factors.

mod cn;
mod factor;
mod flag;
mod kinds;
mod st;

pub use cn::Cn;
pub use factor::{Factor, Medium, factor, factor_for_code};
pub use flag::{Flag, Version};
pub use kinds::{DataFlag, FieldKind};
pub use st::SystemType;

/// Defines a code enum with an `Other` variant that keeps unknown values.
macro_rules! code_enum {
    (
        $(#[$meta:meta])*
        $name:ident($repr:ty) { $($(#[$vmeta:meta])* $variant:ident = $code:literal => $desc:literal,)* }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum $name {
            $($(#[$vmeta])* #[doc = $desc] $variant,)*
            /// A value this table does not name; kept, not rejected.
            Other($repr),
        }

        impl $name {
            /// The typed value of a wire code.
            pub fn from_code(code: $repr) -> Self {
                match code {
                    $($code => Self::$variant,)*
                    other => Self::Other(other),
                }
            }

            /// The wire code.
            pub fn code(self) -> $repr {
                match self {
                    $(Self::$variant => $code,)*
                    Self::Other(code) => code,
                }
            }

            /// What the standard calls it, or `None` for unknown codes.
            pub fn description(self) -> Option<&'static str> {
                match self {
                    $(Self::$variant => Some($desc),)*
                    Self::Other(_) => None,
                }
            }
        }
    };
}

/// Defines a string-keyed enum whose `Other` variant stands for unknown spellings.
macro_rules! str_enum {
    (
        $(#[$meta:meta])*
        $name:ident { $($variant:ident = $text:literal => $desc:literal,)* }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum $name {
            $(#[doc = $desc] $variant,)*
            /// A spelling this table does not know; the raw text is kept by the caller.
            Other,
        }

        impl $name {
            /// The typed value of a wire spelling (case-sensitive, as the standard says).
            pub fn from_wire(text: &str) -> Self {
                match text {
                    $($text => Self::$variant,)*
                    _ => Self::Other,
                }
            }

            /// The wire spelling, or `None` for `Other`.
            pub fn as_str(self) -> Option<&'static str> {
                match self {
                    $(Self::$variant => Some($text),)*
                    Self::Other => None,
                }
            }

            /// What the standard says it means.
            pub fn description(self) -> Option<&'static str> {
                match self {
                    $(Self::$variant => Some($desc),)*
                    Self::Other => None,
                }
            }
        }
    };
}

pub(crate) use code_enum;
pub(crate) use str_enum;
