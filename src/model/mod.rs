//! The city model: grid hierarchy and codes, components, units, class tables.
//! Pure data and rules; no files, no HTTP.

mod city;
mod class;
mod code;
mod component;
mod grid;
mod unit;
mod zone;

pub use city::{City, CityBuilder, ComponentFields, GridFields, NameId, Names};
pub use class::{ClassEntry, ClassKind, ClassTable};
pub use code::{ClassCode, ComponentCode, DigitSet, GridCode, Hierarchy, LevelDef};
pub use component::{Accuracy, Component, Status};
pub use grid::{Chief, Grid, GridId};
pub use unit::{Unit, UnitId, UnitTable};
pub use zone::{Zone, is_layer_name};

/// Everything that can be wrong with model data.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum ModelError {
    #[error("malformed {what} {code:?}: {reason}")]
    MalformedCode { what: &'static str, code: String, reason: String },
    #[error("component code {code} says class {}, but the record's class is {declared}", &code[6..10])]
    ClassMismatch { code: String, declared: String },
    #[error("unknown class {code}: not in the class table (add local classes with a class file)")]
    UnknownClass { code: String },
    #[error("bad {field} {value:?}: expected {expected}")]
    BadValue { field: &'static str, value: String, expected: &'static str },
    #[error("duplicate {what} {code}")]
    Duplicate { what: &'static str, code: String },
    #[error("grid hierarchy: {0}")]
    Hierarchy(String),
    #[error("bad level configuration: {0}")]
    BadHierarchy(String),
    #[error("class table {source_name}, line {line}: {reason}")]
    ClassTable { source_name: String, line: usize, reason: String },
}
