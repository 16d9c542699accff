//! The datasets a data directory versions: one typed name for each, with where its versions
//! live and in which format.

use serde::{Deserialize, Serialize};

/// One versioned dataset of a city. Every dataset is imported, versioned and rolled back the
/// same way (see [`super::Store::save_versions`] and [`super::Store::set_current`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Dataset {
    /// Grid polygons of every level (FlatGeobuf, EPSG:4326).
    Grids,
    /// Component points (FlatGeobuf, EPSG:4326).
    Components,
    /// Responsibility polygons of every zone layer (FlatGeobuf, EPSG:4326).
    Zones,
    /// The unit register: code, name, phone (CSV).
    Units,
    /// The responsibility list (CSV).
    Rules,
    /// The working calendar: working hours, weekend, holidays and make-up days per year (TOML).
    Calendar,
    /// The city settings: name, county code, default CRS, centre, grid hierarchy (TOML).
    City,
    /// The staff register: id, name, role, unit, home grids (CSV; see [`crate::staff::register`]).
    Staff,
}

impl Dataset {
    /// Every dataset, in the order they are listed.
    pub const ALL: [Dataset; 8] =
        [Dataset::Grids, Dataset::Components, Dataset::Zones, Dataset::Units, Dataset::Rules, Dataset::Calendar, Dataset::City, Dataset::Staff];

    /// Its name in the manifest, the API and the command line.
    pub fn name(self) -> &'static str {
        match self {
            Dataset::Grids => "grids",
            Dataset::Components => "components",
            Dataset::Zones => "zones",
            Dataset::Units => "units",
            Dataset::Rules => "rules",
            Dataset::Calendar => "calendar",
            Dataset::City => "city",
            Dataset::Staff => "staff",
        }
    }

    /// The dataset of this name.
    pub fn parse(name: &str) -> Option<Dataset> {
        Dataset::ALL.into_iter().find(|d| d.name() == name)
    }

    /// The folder of its version files, relative to the data directory.
    pub fn folder(self) -> &'static str {
        match self {
            Dataset::Grids => "layers/grids",
            Dataset::Components => "layers/components",
            Dataset::Zones => "layers/zones",
            Dataset::Units => "units",
            Dataset::Rules => "rules",
            Dataset::Calendar => "calendar",
            Dataset::City => "city",
            Dataset::Staff => "staff",
        }
    }

    /// The extension of its version files.
    pub fn ext(self) -> &'static str {
        match self {
            Dataset::Grids | Dataset::Components | Dataset::Zones => "fgb",
            Dataset::Units | Dataset::Rules | Dataset::Staff => "csv",
            Dataset::Calendar | Dataset::City => "toml",
        }
    }

    /// A spatial layer (read through the survey-layer readers, served as tiles).
    pub fn is_layer(self) -> bool {
        matches!(self, Dataset::Grids | Dataset::Components | Dataset::Zones)
    }

    /// The names of every dataset, for messages: `grids, components, …`.
    pub fn names() -> String {
        Dataset::ALL.map(Dataset::name).join(", ")
    }
}

impl std::fmt::Display for Dataset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
