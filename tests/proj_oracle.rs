//! The system PROJ as the oracle of the built-in (pure-Rust) CRS engine, and the EPSG codes and
//! WKT only PROJ knows. Built and run only with the `proj` feature (`required-features` in
//! Cargo.toml): `cargo test --features proj --test proj_oracle`, which `.ci/proj.sh` runs after
//! installing the system PROJ.

use citygrid::crs::{AxisOrder, Crs, CrsError};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const ESRI_4549: &str = r#"PROJCS["CGCS2000_3_Degree_GK_CM_120E",GEOGCS["GCS_China_Geodetic_Coordinate_System_2000",DATUM["D_China_2000",SPHEROID["CGCS2000",6378137.0,298.257222101]],PRIMEM["Greenwich",0.0],UNIT["Degree",0.0174532925199433]],PROJECTION["Gauss_Kruger"],PARAMETER["False_Easting",500000.0],PARAMETER["False_Northing",0.0],PARAMETER["Central_Meridian",120.0],PARAMETER["Scale_Factor",1.0],PARAMETER["Latitude_Of_Origin",0.0],UNIT["Meter",1.0]]"#;

/// Every built-in projected code, with the longitude strip of its zone.
fn projected_codes() -> Vec<(u32, f64, f64)> {
    let mut v = Vec::new();
    for code in 4491..=4554u32 {
        let (cm, half) = match code {
            4491..=4501 => (f64::from((code - 4491 + 13) * 6 - 3), 3.0),
            4502..=4512 => (f64::from(75 + (code - 4502) * 6), 3.0),
            4513..=4533 => (f64::from((code - 4513 + 25) * 3), 1.5),
            _ => (f64::from(75 + (code - 4534) * 3), 1.5),
        };
        v.push((code, cm, half));
    }
    v
}

/// Random points per EPSG code.
const POINTS_PER_CODE: usize = 200;

/// Compares forward and inverse with PROJ at random points of the zone; returns the
/// worst (metres, degrees).
fn compare(code: u32, geo: &str, lon: (f64, f64), lat: (f64, f64), rng: &mut ChaCha8Rng) -> (f64, f64) {
    let ours = Crs::from_epsg(code).unwrap();
    let target = format!("EPSG:{code}");
    let fwd = proj::Proj::new_known_crs(geo, &target, None).unwrap();
    let inv = proj::Proj::new_known_crs(&target, geo, None).unwrap();
    let (mut worst_m, mut worst_deg) = (0.0f64, 0.0f64);
    for _ in 0..POINTS_PER_CODE {
        let p = (rng.random_range(lon.0..lon.1), rng.random_range(lat.0..lat.1));
        let a = ours.from_wgs84(p.0, p.1).unwrap();
        let b: (f64, f64) = fwd.convert(p).unwrap();
        worst_m = worst_m.max((a.0 - b.0).abs()).max((a.1 - b.1).abs());
        let c = ours.to_wgs84(b.0, b.1).unwrap();
        let d: (f64, f64) = inv.convert(b).unwrap();
        worst_deg = worst_deg.max((c.0 - d.0).abs()).max((c.1 - d.1).abs());
    }
    (worst_m, worst_deg)
}

#[test]
fn builtin_engine_agrees_with_proj() {
    let mut rng = ChaCha8Rng::seed_from_u64(4549);
    let (mut worst_m, mut worst_deg) = (0.0f64, 0.0f64);
    let mut record = |code: u32, (m, d): (f64, f64)| {
        assert!(m <= 1e-6, "EPSG:{code}: forward differs from PROJ by {m} m");
        assert!(d <= 1e-9, "EPSG:{code}: inverse differs from PROJ by {d}°");
        worst_m = worst_m.max(m);
        worst_deg = worst_deg.max(d);
    };
    for (code, cm, half) in projected_codes() {
        // CGCS2000 geographic → the zone: a conversion, no datum question.
        let r = compare(code, "EPSG:4490", (cm - half, cm + half), (18.0, 53.5), &mut rng);
        record(code, r);
    }
    for zone in [1, 17, 31, 44, 45, 46, 49, 50, 51, 52, 53, 60] {
        let cm = f64::from(zone * 6) - 183.0;
        record(32600 + zone, compare(32600 + zone, "EPSG:4326", (cm - 3.0, cm + 3.0), (0.0, 84.0), &mut rng));
        record(32700 + zone, compare(32700 + zone, "EPSG:4326", (cm - 3.0, cm + 3.0), (-80.0, 0.0), &mut rng));
    }
    record(3857, compare(3857, "EPSG:4326", (-180.0, 180.0), (-85.0, 85.0), &mut rng));
    println!("built-in engine vs PROJ: forward ≤ {worst_m:e} m, inverse ≤ {worst_deg:e}°");
}

#[test]
fn the_builtin_catalogue_matches_the_epsg_database() {
    for code in (4491..=4554).chain([3857, 32601, 32650, 32660, 32701, 32750, 32760]) {
        let ours = Crs::from_epsg(code).unwrap();
        let theirs = with_proj_name(code);
        assert_eq!(ours.name(), theirs, "EPSG:{code}");
    }
}

fn with_proj_name(code: u32) -> String {
    // The PROJ engine's name for the code (what `describe` reads from the database).
    Crs::from_epsg_via_proj(code).unwrap().name().to_owned()
}

#[test]
fn other_codes_go_through_proj() {
    // ETRS89 / UTM zone 32N (GRS80): easting first; NAD83 / California zone 6 (ftUS).
    let c = Crs::parse("EPSG:25832").unwrap();
    assert_eq!(c.epsg(), Some(25832));
    assert_eq!(c.axis_order(), AxisOrder::EastNorth);
    assert_eq!(c.name(), "ETRS89 / UTM zone 32N");
    let (x, y) = c.from_wgs84(9.0, 48.0).unwrap();
    let (lon, lat) = c.to_wgs84(x, y).unwrap();
    assert!((lon - 9.0).abs() < 1e-8 && (lat - 48.0).abs() < 1e-8);
    let t = c.transformer().unwrap();
    assert_eq!(t.to_wgs84(x, y).unwrap(), (lon, lat));
    assert!(c.from_wgs84(100.0, 39.9).is_err(), "outside its area");
    // NZGD2000 / New Zealand Transverse Mercator: northing first.
    assert_eq!(Crs::parse("EPSG:2193").unwrap().axis_order(), AxisOrder::NorthEast);
    // ETRS89 geographic: lat first, and geographic (the API then takes lon/lat).
    let etrs = Crs::parse("EPSG:4258").unwrap();
    assert!(etrs.is_geographic() && !c.is_geographic());
    assert_eq!(etrs.axis_order(), AxisOrder::NorthEast);
    // Beijing 1954 / 3-degree Gauss-Kruger CM 117E: PROJ has only a ballpark shift
    // onshore, which would be ~100 m off: refused.
    let e = Crs::parse("EPSG:2435").unwrap_err();
    assert!(matches!(e, CrsError::NoDatumShift(_)), "{e}");
    assert!(e.to_string().contains("Beijing 1954") && e.to_string().contains("+towgs84"), "{e}");
    // A WKT the built-in reader does not do (Lambert) goes to PROJ.
    let lcc = ESRI_4549
        .replace("Gauss_Kruger", "Lambert_Conformal_Conic")
        .replace("PARAMETER[\"Scale_Factor\",1.0]", "PARAMETER[\"Standard_Parallel_1\",25.0],PARAMETER[\"Standard_Parallel_2\",47.0]");
    let c = Crs::parse(&lcc).unwrap();
    let (x, y) = c.from_wgs84(120.6, 31.27).unwrap();
    let (lon, lat) = c.to_wgs84(x, y).unwrap();
    assert!((lon - 120.6).abs() < 1e-8 && (lat - 31.27).abs() < 1e-8);
}

#[test]
fn unknown_codes_are_unknown_to_proj_too() {
    assert!(matches!(Crs::parse("EPSG:999999"), Err(CrsError::UnknownEpsg(999999))));
    // WKT the built-in reader refuses goes to PROJ, which refuses it too.
    for wkt in ["PROJCS[\"x\"", "PROJCS[\"x\"]]", "PROJCS[\"x\"]"] {
        assert!(matches!(Crs::parse(wkt), Err(CrsError::UnsupportedWkt(_)) | Err(CrsError::Proj(_))), "{wkt}");
    }
}
