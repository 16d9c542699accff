use super::*;
use proptest::prelude::*;

/// reference/domain.md, computed with PROJ 9: (lon, lat), EPSG, northing, easting.
const VECTORS: [((f64, f64), u32, f64, f64); 5] = [
    ((114.3, 30.6), 4547, 3_386_666.251, 528_770.237),
    ((116.366, 39.912), 4548, 4_419_950.495, 445_790.662),
    ((116.366, 39.912), 4527, 4_419_950.495, 39_445_790.662),
    ((120.6, 31.27), 4549, 3_461_065.011, 557_140.955),
    ((108.94, 34.27), 4545, 3_794_011.029, 586_567.409),
];

fn crs(s: &str) -> Crs {
    Crs::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
}

#[test]
fn crs_is_send_and_sync() {
    fn check<T: Send + Sync + Clone>() {}
    check::<Crs>();
    check::<CrsError>();
}

#[test]
fn domain_vectors_forward_within_a_millimetre_and_inverse_within_1e8_degrees() {
    for ((lon, lat), code, n, e) in VECTORS {
        let c = Crs::from_epsg(code).unwrap();
        let (x, y) = c.from_wgs84(lon, lat).unwrap();
        assert!((x - e).abs() < 1e-3 && (y - n).abs() < 1e-3, "EPSG:{code}: ({x}, {y}) vs ({e}, {n})");
        // EPSG order: northing first.
        let (a, b) = c.from_wgs84_epsg_order(lon, lat).unwrap();
        assert_eq!((a, b), (y, x));
        let (lo, la) = c.to_wgs84(e, n).unwrap();
        assert!((lo - lon).abs() < 1e-8 && (la - lat).abs() < 1e-8, "EPSG:{code}: ({lo}, {la})");
        let (lo2, la2) = c.to_wgs84_epsg_order(n, e).unwrap();
        assert_eq!((lo2, la2), (lo, la));
    }
}

#[test]
fn utm_and_web_mercator_match_cs2cs() {
    // cs2cs (PROJ 9.1.1) EPSG:4326 → EPSG:32650 / 32719 / 3857.
    let cases = [
        (32650, (117.1, 39.1), (508_646.974265, 4_327_878.545120)),
        (32719, (-70.0, -33.0), (406_582.221792, 6_348_269.025888)),
        (3857, (116.366, 39.912), (12_953_803.865650, 4_853_162.587543)),
    ];
    for (code, (lon, lat), (e, n)) in cases {
        let c = Crs::from_epsg(code).unwrap();
        assert_eq!(c.axis_order(), AxisOrder::EastNorth);
        let (x, y) = c.from_wgs84(lon, lat).unwrap();
        assert!((x - e).abs() < 1e-6 && (y - n).abs() < 1e-6, "EPSG:{code}: ({x}, {y}) vs ({e}, {n})");
        let (lo, la) = c.to_wgs84(e, n).unwrap();
        assert!((lo - lon).abs() < 1e-9 && (la - lat).abs() < 1e-9, "EPSG:{code}: ({lo}, {la})");
    }
}

#[test]
fn parse_accepts_the_epsg_spellings_and_the_datum_names() {
    for s in ["EPSG:4549", "epsg:4549", " 4549 ", "Epsg:4549"] {
        let c = crs(s);
        assert_eq!(c.epsg(), Some(4549));
        assert_eq!(c.name(), "CGCS2000 / 3-degree Gauss-Kruger CM 120E");
        assert_eq!(c.axis_order(), AxisOrder::NorthEast);
        assert!(!c.is_geographic());
    }
    assert_eq!(crs("EPSG:4527").name(), "CGCS2000 / 3-degree Gauss-Kruger zone 39");
    assert_eq!(crs("EPSG:4491").name(), "CGCS2000 / Gauss-Kruger zone 13");
    assert_eq!(crs("EPSG:4512").name(), "CGCS2000 / Gauss-Kruger CM 135E");
    assert_eq!(crs("EPSG:32650").name(), "WGS 84 / UTM zone 50N");
    assert_eq!(crs("EPSG:32750").name(), "WGS 84 / UTM zone 50S");
    assert_eq!(crs("EPSG:4491").proj_definition(), Some("+proj=tmerc +lat_0=0 +lon_0=75 +k=1 +x_0=13500000 +y_0=0 +ellps=GRS80 +units=m +no_defs"));
    assert_eq!(crs("EPSG:4533").proj_definition(), Some("+proj=tmerc +lat_0=0 +lon_0=135 +k=1 +x_0=45500000 +y_0=0 +ellps=GRS80 +units=m +no_defs"));

    for (s, d) in [("wgs84", Datum::Wgs84), ("CGCS2000", Datum::Cgcs2000), ("gcj02", Datum::Gcj02), ("BD09", Datum::Bd09)] {
        let c = crs(s);
        assert_eq!(c, Crs::datum(d));
        assert_eq!(c.axis_order(), AxisOrder::EastNorth);
        assert!(c.is_geographic());
        assert_eq!(c.epsg(), None);
    }
    // EPSG:4326 / 4490 are geographic with the EPSG (lat, lon) order.
    for code in [4326, 4490] {
        let c = Crs::from_epsg(code).unwrap();
        assert!(c.is_geographic());
        assert_eq!(c.axis_order(), AxisOrder::NorthEast);
        assert_eq!(c.to_wgs84(116.4, 39.9).unwrap(), (116.4, 39.9));
        assert_eq!(c.to_wgs84_epsg_order(39.9, 116.4).unwrap(), (116.4, 39.9));
    }
    assert_eq!("EPSG:4549".parse::<Crs>().unwrap().epsg(), Some(4549));
}

#[test]
fn gcj02_and_bd09_names_delegate_to_the_datum() {
    // reference/domain.md vector.
    let (wgs, gcj, bd) = ((120.6, 31.27), (120.604167375, 31.267800244), (120.610568106, 31.274151483));
    let g = crs("gcj02").from_wgs84(wgs.0, wgs.1).unwrap();
    assert!((g.0 - gcj.0).abs() < 1e-9 && (g.1 - gcj.1).abs() < 1e-9);
    let b = crs("bd09").from_wgs84(wgs.0, wgs.1).unwrap();
    assert!((b.0 - bd.0).abs() < 1e-9 && (b.1 - bd.1).abs() < 1e-9);
    let w = crs("bd09").to_wgs84(bd.0, bd.1).unwrap();
    assert!((w.0 - wgs.0).abs() < 1e-7 && (w.1 - wgs.1).abs() < 1e-7);
}

#[test]
fn errors_for_unknown_codes_legacy_datums_and_garbage() {
    #[cfg(not(feature = "proj"))]
    {
        let e = Crs::parse("EPSG:2000").unwrap_err();
        assert_eq!(e, CrsError::UnknownEpsg(2000));
        assert_eq!(e.to_string(), "EPSG:2000 is not known to the built-in engine; build with --features proj");
        for (code, datum) in [(2435, "Beijing 1954"), (2383, "Xian 1980"), (21413, "Beijing 1954"), (4214, "Beijing 1954")] {
            let e = Crs::from_epsg(code).unwrap_err();
            assert_eq!(e, CrsError::LegacyDatum { code, name: datum });
            assert!(e.to_string().contains("--features proj"), "{e}");
        }
    }
    for s in ["", "mars", "EPSG:", "EPSG:abc", "EPSG:99999999999", "4549x", "utm50"] {
        assert!(matches!(Crs::parse(s), Err(CrsError::Unrecognized(_))), "{s:?}");
    }
    assert!(Crs::parse("mars").unwrap_err().to_string().contains("EPSG:nnnn"));
    assert!(matches!(Crs::parse("+proj=nonsense +ellps=GRS80"), Err(CrsError::InvalidProjString { .. })));
    assert!(matches!(Crs::parse("+init=epsg:4549"), Err(CrsError::InvalidProjString { .. })));
    // (With the `proj` feature, WKT the built-in reader refuses goes to PROJ, which refuses it too.)
    for wkt in ["PROJCS[\"x\"", "PROJCS[\"x\"]]", "PROJCS[\"x\"]"] {
        assert!(matches!(Crs::parse(wkt), Err(CrsError::UnsupportedWkt(_)) | Err(CrsError::Proj(_))), "{wkt}");
    }
}

#[test]
fn a_proj_string_on_another_ellipsoid_needs_towgs84() {
    let e = Crs::parse("+proj=tmerc +lon_0=117 +k=1 +x_0=500000 +ellps=krass +units=m").unwrap_err();
    assert!(e.to_string().contains("+towgs84"), "{e}");
}

#[test]
fn outside_the_area_is_an_error() {
    let c = crs("EPSG:4549"); // 118.5–121.5°E, checked with 1° margin
    // A Xi'an point given to the Suzhou zone (wrong zone).
    let e = c.from_wgs84(108.94, 34.27).unwrap_err();
    assert!(matches!(e, CrsError::OutsideArea { .. }), "{e}");
    assert!(e.to_string().contains("outside the CRS's area"), "{e}");
    // Swapped axes: northing given as easting.
    assert!(matches!(c.to_wgs84(3_461_065.011, 557_140.955), Err(CrsError::OutsideArea { .. })));
    // A zone-prefixed easting (EPSG:4527 style) given to the CM-only CRS.
    assert!(matches!(c.to_wgs84(40_557_140.955, 3_461_065.011), Err(CrsError::OutsideArea { .. })));
    // …and the prefix missing for the zone CRS.
    let z = crs("EPSG:4527");
    assert!(matches!(z.to_wgs84(445_790.662, 4_419_950.495), Err(CrsError::OutsideArea { .. })));
    // Within the margin is fine.
    assert!(c.from_wgs84(122.3, 31.0).is_ok());
    assert!(c.from_wgs84(122.6, 31.0).is_err());
    // UTM hemisphere.
    assert!(crs("EPSG:32650").from_wgs84(117.0, -10.0).is_err());
    // Non-finite numbers and out-of-range lon/lat.
    assert!(matches!(c.to_wgs84(f64::NAN, 1.0), Err(CrsError::Transform { .. })));
    assert!(crs("wgs84").to_wgs84(200.0, 10.0).is_err());
    assert!(crs("EPSG:3857").from_wgs84(0.0, 89.0).is_err());
}

#[test]
fn local_transverse_mercator_with_projection_height() {
    // A city TM: CM 120.5°E, scale for a projection height of ~100 m. cs2cs (PROJ 9.1.1).
    let c = crs("+proj=tmerc +lat_0=0 +lon_0=120.5 +k=1.0000157 +x_0=500000 +y_0=0 +ellps=GRS80 +units=m +no_defs");
    assert_eq!(c.epsg(), None);
    assert_eq!(c.axis_order(), AxisOrder::EastNorth);
    let (x, y) = c.from_wgs84(120.6, 31.27).unwrap();
    assert!((x - 509_523.563334).abs() < 1e-6 && (y - 3_460_968.356502).abs() < 1e-6, "({x}, {y})");
    let (lon, lat) = c.to_wgs84(x, y).unwrap();
    assert!((lon - 120.6).abs() < 1e-10 && (lat - 31.27).abs() < 1e-10);
    assert!(c.from_wgs84(125.0, 31.0).is_err(), "CM ± 4°");
}

#[test]
fn proj_string_with_a_helmert_shift() {
    // Krasovsky + 7-parameter towgs84, a moved origin; cs2cs (PROJ 9.1.1) values.
    let cases = [
        (
            "+proj=tmerc +lat_0=0 +lon_0=120.5 +k=1 +x_0=50000 +y_0=-3000000 +ellps=krass +towgs84=15.8,-154.4,-82.3,0,0,0,0 +units=m +no_defs",
            (59_458.582802, 460_970.227335),
        ),
        (
            "+proj=tmerc +lat_0=0 +lon_0=120 +k=1 +x_0=500000 +y_0=0 +ellps=krass +towgs84=-50,-130,-90,0.5,-0.6,1.2,3.5 +units=m +no_defs",
            (556_988.509824, 3_461_151.521987),
        ),
    ];
    for (def, (e, n)) in cases {
        let c = crs(def);
        let (x, y) = c.from_wgs84(120.6, 31.27).unwrap();
        assert!((x - e).abs() < 1e-3 && (y - n).abs() < 1e-3, "{def}: ({x}, {y}) vs ({e}, {n})");
        let (lon, lat) = c.to_wgs84(e, n).unwrap();
        assert!((lon - 120.6).abs() < 1e-8 && (lat - 31.27).abs() < 1e-8, "{def}: ({lon}, {lat})");
    }
}

const ESRI_4549: &str = r#"PROJCS["CGCS2000_3_Degree_GK_CM_120E",GEOGCS["GCS_China_Geodetic_Coordinate_System_2000",DATUM["D_China_2000",SPHEROID["CGCS2000",6378137.0,298.257222101]],PRIMEM["Greenwich",0.0],UNIT["Degree",0.0174532925199433]],PROJECTION["Gauss_Kruger"],PARAMETER["False_Easting",500000.0],PARAMETER["False_Northing",0.0],PARAMETER["Central_Meridian",120.0],PARAMETER["Scale_Factor",1.0],PARAMETER["Latitude_Of_Origin",0.0],UNIT["Meter",1.0]]"#;

#[test]
fn wkt_prj_of_the_cgcs2000_gauss_kruger_family() {
    let c = Crs::from_prj_wkt(ESRI_4549).unwrap();
    assert_eq!(c.epsg(), Some(4549));
    let c = crs(ESRI_4549);
    assert_eq!(c.epsg(), Some(4549));
    // OGC WKT1 with an AUTHORITY (projinfo -o WKT1_GDAL).
    let ogc = r#"PROJCS["CGCS2000 / 3-degree Gauss-Kruger CM 120E",
        GEOGCS["China Geodetic Coordinate System 2000",
            DATUM["China_2000",SPHEROID["CGCS2000",6378137,298.257222101,AUTHORITY["EPSG","1024"]],AUTHORITY["EPSG","1043"]],
            PRIMEM["Greenwich",0,AUTHORITY["EPSG","8901"]],
            UNIT["degree",0.0174532925199433,AUTHORITY["EPSG","9122"]],AUTHORITY["EPSG","4490"]],
        PROJECTION["Transverse_Mercator"],
        PARAMETER["latitude_of_origin",0],PARAMETER["central_meridian",120],PARAMETER["scale_factor",1],
        PARAMETER["false_easting",500000],PARAMETER["false_northing",0],
        UNIT["metre",1,AUTHORITY["EPSG","9001"]],
        AXIS["Northing",NORTH],AXIS["Easting",EAST],
        AUTHORITY["EPSG","4549"]]"#;
    assert_eq!(crs(ogc).epsg(), Some(4549));
    // Zone-prefixed and 6° variants are matched from their parameters.
    let zone39 = ESRI_4549
        .replace("CGCS2000_3_Degree_GK_CM_120E", "CGCS2000_3_Degree_GK_Zone_39")
        .replace("500000.0", "39500000.0")
        .replace("\"Central_Meridian\",120.0", "\"Central_Meridian\",117.0");
    assert_eq!(crs(&zone39).epsg(), Some(4527));
    let six = ESRI_4549.replace("CGCS2000_3_Degree_GK_CM_120E", "CGCS2000_GK_CM_123E").replace(",120.0]", ",123.0]");
    assert_eq!(crs(&six).epsg(), Some(4510));
    let six_zone = six.replace("CGCS2000_GK_CM_123E", "CGCS2000_GK_Zone_21").replace("500000.0", "21500000.0");
    assert_eq!(crs(&six_zone).epsg(), Some(4499));
    // A CM of 117°E with no "3_Degree" in the name is the 6° zone (same formulas).
    let c = crs(&ESRI_4549.replace(",120.0]", ",117.0]").replace("3_Degree_", ""));
    assert_eq!(c.epsg(), Some(4509));
    // A moved central meridian is a custom TM, same numbers as the PROJ string.
    let local = ESRI_4549.replace("CGCS2000_3_Degree_GK_CM_120E", "Suzhou_Local").replace(",120.0]", ",120.5]");
    let c = crs(&local);
    assert_eq!(c.epsg(), None);
    assert_eq!(c.name(), "Suzhou_Local");
    let p = crs("+proj=tmerc +lat_0=0 +lon_0=120.5 +k=1 +x_0=500000 +y_0=0 +ellps=GRS80 +units=m +no_defs");
    assert_eq!(c.from_wgs84(120.6, 31.27).unwrap(), p.from_wgs84(120.6, 31.27).unwrap());
    // The vectors through the WKT.
    let (x, y) = crs(ESRI_4549).from_wgs84(120.6, 31.27).unwrap();
    assert!((x - 557_140.955).abs() < 1e-3 && (y - 3_461_065.011).abs() < 1e-3);
}

#[test]
fn wkt_prj_of_utm_web_mercator_and_geographic() {
    let utm = r#"PROJCS["WGS_1984_UTM_Zone_50N",GEOGCS["GCS_WGS_1984",DATUM["D_WGS_1984",SPHEROID["WGS_1984",6378137.0,298.257223563]],PRIMEM["Greenwich",0.0],UNIT["Degree",0.0174532925199433]],PROJECTION["Transverse_Mercator"],PARAMETER["False_Easting",500000.0],PARAMETER["False_Northing",0.0],PARAMETER["Central_Meridian",117.0],PARAMETER["Scale_Factor",0.9996],PARAMETER["Latitude_Of_Origin",0.0],UNIT["Meter",1.0]]"#;
    assert_eq!(crs(utm).epsg(), Some(32650));
    let south = utm.replace("Zone_50N", "Zone_19S").replace("\"False_Northing\",0.0", "\"False_Northing\",10000000.0").replace(",117.0]", ",-69.0]");
    assert_eq!(crs(&south).epsg(), Some(32719));
    let web = r#"PROJCS["WGS_1984_Web_Mercator_Auxiliary_Sphere",GEOGCS["GCS_WGS_1984",DATUM["D_WGS_1984",SPHEROID["WGS_1984",6378137.0,298.257223563]],PRIMEM["Greenwich",0.0],UNIT["Degree",0.0174532925199433]],PROJECTION["Mercator_Auxiliary_Sphere"],PARAMETER["False_Easting",0.0],PARAMETER["False_Northing",0.0],PARAMETER["Central_Meridian",0.0],PARAMETER["Standard_Parallel_1",0.0],PARAMETER["Auxiliary_Sphere_Type",0.0],UNIT["Meter",1.0]]"#;
    assert_eq!(crs(web).epsg(), Some(3857));
    let geo = r#"GEOGCS["GCS_China_Geodetic_Coordinate_System_2000",DATUM["D_China_2000",SPHEROID["CGCS2000",6378137.0,298.257222101]],PRIMEM["Greenwich",0.0],UNIT["Degree",0.0174532925199433]]"#;
    assert_eq!(crs(geo).epsg(), Some(4490));
}

#[cfg(not(feature = "proj"))]
#[test]
fn wkt_that_is_not_built_in_says_why() {
    let beijing = r#"PROJCS["Beijing_1954_3_Degree_GK_CM_117E",GEOGCS["GCS_Beijing_1954",DATUM["D_Beijing_1954",SPHEROID["Krasovsky_1940",6378245.0,298.3]],PRIMEM["Greenwich",0.0],UNIT["Degree",0.0174532925199433]],PROJECTION["Gauss_Kruger"],PARAMETER["False_Easting",500000.0],PARAMETER["False_Northing",0.0],PARAMETER["Central_Meridian",117.0],PARAMETER["Scale_Factor",1.0],PARAMETER["Latitude_Of_Origin",0.0],UNIT["Meter",1.0]]"#;
    let e = crs_err(beijing);
    assert!(e.contains("D_Beijing_1954") && e.contains("shift to WGS84 is unknown"), "{e}");
    let lcc = ESRI_4549.replace("Gauss_Kruger", "Lambert_Conformal_Conic");
    let e = crs_err(&lcc);
    assert!(e.contains("lambert_conformal_conic"), "{e}");
    // With a TOWGS84 the Beijing 1954 one is fine (a custom TM with the shift).
    let shifted =
        beijing.replace("SPHEROID[\"Krasovsky_1940\",6378245.0,298.3]", "SPHEROID[\"Krasovsky_1940\",6378245.0,298.3],TOWGS84[15.8,-154.4,-82.3,0,0,0,0]");
    let c = crs(&shifted);
    assert_eq!(c.epsg(), None);
    assert!(c.proj_definition().unwrap().contains("+towgs84=15.8,-154.4,-82.3,0,0,0,0"));
    assert!(c.proj_definition().unwrap().contains("+a=6378245 +rf=298.3"));
}

#[cfg(not(feature = "proj"))]
fn crs_err(s: &str) -> String {
    Crs::parse(s).unwrap_err().to_string()
}

#[test]
fn transformer_converts_batches_and_reports_the_first_failure() {
    let c = crs("EPSG:4549");
    let t = c.transformer().unwrap();
    assert_eq!(t.crs().epsg(), Some(4549));
    let mut pts = vec![(557_140.955, 3_461_065.011), (528_000.0, 3_400_000.0)];
    t.to_wgs84_in_place(&mut pts).unwrap();
    assert!((pts[0].0 - 120.6).abs() < 1e-8 && (pts[0].1 - 31.27).abs() < 1e-8);
    let mut bad = vec![(557_140.955, 3_461_065.011), (3_461_065.011, 557_140.955), (1.0, 2.0)];
    let (i, _) = t.to_wgs84_in_place(&mut bad).unwrap_err();
    assert_eq!(i, 1);
    let all = t.to_wgs84_all(&[(557_140.955, 3_461_065.011), (f64::INFINITY, 0.0)]);
    assert!(all[0].is_ok() && all[1].is_err());
    assert_eq!(t.from_wgs84(120.6, 31.27).unwrap(), c.from_wgs84(120.6, 31.27).unwrap());
}

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

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Round trips inside each zone stay below a millimetre (in practice ~1e-9 m).
    #[test]
    fn gauss_kruger_round_trips_below_a_millimetre(i in 0usize..64, u in -1.0f64..1.0, lat in 18.0f64..53.5) {
        let (code, cm, half) = projected_codes()[i];
        let c = Crs::from_epsg(code).unwrap();
        let lon = cm + u * half;
        let (x, y) = c.from_wgs84(lon, lat).unwrap();
        let (lo, la) = c.to_wgs84(x, y).unwrap();
        let (x2, y2) = c.from_wgs84(lo, la).unwrap();
        prop_assert!((x2 - x).abs() < 1e-3 && (y2 - y).abs() < 1e-3, "EPSG:{code} ({x},{y}) → ({x2},{y2})");
        prop_assert!((lo - lon).abs() < 1e-9 && (la - lat).abs() < 1e-9);
    }

    #[test]
    fn utm_round_trips_below_a_millimetre(zone in 1u32..=60, south in any::<bool>(), u in -1.0f64..1.0, lat in 0.0f64..80.0) {
        let code = if south { 32700 } else { 32600 } + zone;
        let c = Crs::from_epsg(code).unwrap();
        let lon = f64::from(zone * 6) - 183.0 + 3.0 * u;
        let lat = if south { -lat } else { lat };
        let (x, y) = c.from_wgs84(lon, lat).unwrap();
        let (lo, la) = c.to_wgs84(x, y).unwrap();
        let (x2, y2) = c.from_wgs84(lo, la).unwrap();
        prop_assert!((x2 - x).abs() < 1e-3 && (y2 - y).abs() < 1e-3);
    }

    #[test]
    fn local_tm_with_helmert_round_trips_below_a_millimetre(dlon in -2.0f64..2.0, lat in 25.0f64..45.0) {
        let c = Crs::parse("+proj=tmerc +lat_0=0 +lon_0=120.5 +k=1.0000157 +x_0=50000 +y_0=-3000000 +ellps=krass +towgs84=-50,-130,-90,0.5,-0.6,1.2,3.5 +units=m +no_defs").unwrap();
        let (x, y) = c.from_wgs84(120.5 + dlon, lat).unwrap();
        let (lo, la) = c.to_wgs84(x, y).unwrap();
        let (x2, y2) = c.from_wgs84(lo, la).unwrap();
        prop_assert!((x2 - x).abs() < 1e-3 && (y2 - y).abs() < 1e-3, "({x},{y}) → ({x2},{y2})");
    }
}
