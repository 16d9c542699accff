//! The Mapbox Vector Tile 2.1 protobuf messages (`vector_tile.proto`), as prost code.
//!
//! Written out here (the shape `prost-build` generates for the spec's proto file) so the crate
//! builds with the Rust toolchain alone: no `protoc`, no build script. Repeated numeric fields
//! are packed, as the spec requires. Tests decode tiles with the same types.

/// A vector tile: a list of layers.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct Tile {
    #[prost(message, repeated, tag = "3")]
    pub layers: ::prost::alloc::vec::Vec<tile::Layer>,
}

/// Nested message and enum types in `Tile`.
pub mod tile {
    /// A property value; exactly one field is set (spec 4.1).
    #[derive(Clone, PartialEq, ::prost::Message)]
    pub struct Value {
        #[prost(string, optional, tag = "1")]
        pub string_value: ::core::option::Option<::prost::alloc::string::String>,
        #[prost(float, optional, tag = "2")]
        pub float_value: ::core::option::Option<f32>,
        #[prost(double, optional, tag = "3")]
        pub double_value: ::core::option::Option<f64>,
        #[prost(int64, optional, tag = "4")]
        pub int_value: ::core::option::Option<i64>,
        #[prost(uint64, optional, tag = "5")]
        pub uint_value: ::core::option::Option<u64>,
        #[prost(sint64, optional, tag = "6")]
        pub sint_value: ::core::option::Option<i64>,
        #[prost(bool, optional, tag = "7")]
        pub bool_value: ::core::option::Option<bool>,
    }

    /// A feature: id, tags (key index, value index pairs), type, geometry commands (spec 4.2).
    #[derive(Clone, PartialEq, ::prost::Message)]
    pub struct Feature {
        #[prost(uint64, optional, tag = "1", default = "0")]
        pub id: ::core::option::Option<u64>,
        #[prost(uint32, repeated, tag = "2")]
        pub tags: ::prost::alloc::vec::Vec<u32>,
        #[prost(enumeration = "GeomType", optional, tag = "3", default = "Unknown")]
        pub r#type: ::core::option::Option<i32>,
        #[prost(uint32, repeated, tag = "4")]
        pub geometry: ::prost::alloc::vec::Vec<u32>,
    }

    /// A layer: name, features, the key and value dictionaries, extent (spec 4.1).
    #[derive(Clone, PartialEq, ::prost::Message)]
    pub struct Layer {
        #[prost(uint32, required, tag = "15", default = "1")]
        pub version: u32,
        #[prost(string, required, tag = "1")]
        pub name: ::prost::alloc::string::String,
        #[prost(message, repeated, tag = "2")]
        pub features: ::prost::alloc::vec::Vec<Feature>,
        #[prost(string, repeated, tag = "3")]
        pub keys: ::prost::alloc::vec::Vec<::prost::alloc::string::String>,
        #[prost(message, repeated, tag = "4")]
        pub values: ::prost::alloc::vec::Vec<Value>,
        #[prost(uint32, optional, tag = "5", default = "4096")]
        pub extent: ::core::option::Option<u32>,
    }

    /// Geometry type (spec 4.3.4).
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, ::prost::Enumeration)]
    #[repr(i32)]
    pub enum GeomType {
        Unknown = 0,
        Point = 1,
        Linestring = 2,
        Polygon = 3,
    }
}
