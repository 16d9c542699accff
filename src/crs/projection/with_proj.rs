//! The system PROJ (feature `proj`).

use super::{Area, AxisOrder, Crs, CrsError, Engine};

/// PROJ transformations to and from WGS84 lon/lat (normalised: easting/lon first).
pub struct Pair {
    to: proj::Proj,
    from: proj::Proj,
}

impl Pair {
    pub fn new(def: &str) -> Result<Pair, CrsError> {
        let to = proj::Proj::new_known_crs(def, "EPSG:4326", None).map_err(|e| CrsError::Proj(e.to_string()))?;
        let from = proj::Proj::new_known_crs("EPSG:4326", def, None).map_err(|e| CrsError::Proj(e.to_string()))?;
        Ok(Pair { to, from })
    }

    pub fn convert(&self, crs: &Crs, x: f64, y: f64, inverse: bool) -> Result<(f64, f64), CrsError> {
        if inverse {
            let (lon, lat) = self.to.convert((x, y)).map_err(|e| crs.failed(x, y, e))?;
            if !(lon.is_finite() && lat.is_finite()) {
                return Err(crs.failed(x, y, "no result"));
            }
            if !crs.area.contains(lon, lat) {
                return Err(crs.outside(x, y));
            }
            Ok((lon, lat))
        } else {
            if !crs.area.contains(x, y) {
                return Err(crs.outside(x, y));
            }
            let r = self.from.convert((x, y)).map_err(|e| crs.failed(x, y, e))?;
            if !(r.0.is_finite() && r.1.is_finite()) {
                return Err(crs.failed(x, y, "no result"));
            }
            Ok(r)
        }
    }
}

/// What PROJ's database says about a CRS: name, EPSG axis order, area of use, geographic?
fn describe(def: &str) -> Result<(String, AxisOrder, Area, bool), CrsError> {
    use proj_sys::*;
    use std::ffi::{CStr, CString};
    let c = CString::new(def).map_err(|_| CrsError::Unrecognized(def.to_owned()))?;
    // SAFETY: a private context, every object created is destroyed before returning, and
    // strings returned by PROJ are copied while their object is alive.
    unsafe {
        let ctx = proj_context_create();
        let crs = proj_create(ctx, c.as_ptr());
        if crs.is_null() {
            proj_context_destroy(ctx);
            return Err(CrsError::Proj(format!("PROJ does not know {def:?}")));
        }
        let geographic = matches!(proj_get_type(crs), PJ_TYPE_PJ_TYPE_GEOGRAPHIC_CRS | PJ_TYPE_PJ_TYPE_GEOGRAPHIC_2D_CRS | PJ_TYPE_PJ_TYPE_GEOGRAPHIC_3D_CRS);
        let name_ptr = proj_get_name(crs);
        let name = if name_ptr.is_null() { def.to_owned() } else { CStr::from_ptr(name_ptr).to_string_lossy().into_owned() };
        let mut axis = AxisOrder::EastNorth;
        let cs = proj_crs_get_coordinate_system(ctx, crs);
        if !cs.is_null() {
            let mut dir: *const std::os::raw::c_char = std::ptr::null();
            let ok = proj_cs_get_axis_info(
                ctx,
                cs,
                0,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                &mut dir,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            );
            if ok != 0 && !dir.is_null() {
                let d = CStr::from_ptr(dir).to_string_lossy().to_ascii_lowercase();
                if d == "north" || d == "south" {
                    axis = AxisOrder::NorthEast;
                }
            }
            proj_destroy(cs);
        }
        // Is PROJ's way to WGS84 only a "ballpark" (no datum shift) from an ellipsoid other
        // than GRS80/WGS84 (Beijing 1954, Xian 1980, …)? That would be silently wrong by
        // tens to hundreds of metres.
        let mut semi_major = 6_378_137.0;
        let ellps = proj_get_ellipsoid(ctx, crs);
        if !ellps.is_null() {
            proj_ellipsoid_get_parameters(ctx, ellps, &mut semi_major, std::ptr::null_mut(), std::ptr::null_mut(), std::ptr::null_mut());
            proj_destroy(ellps);
        }
        // The best operation valid over the whole of the CRS's area (PROJ's default strict
        // containment, as `projinfo -s CRS -t EPSG:4326` lists them) decides: operations of a
        // few oil fields do not make a city's layer right.
        let mut ballpark = false;
        if (semi_major - 6_378_137.0).abs() > 1.0 {
            let wgs84_name = CString::new("EPSG:4326").expect("no NUL");
            let wgs84 = proj_create(ctx, wgs84_name.as_ptr());
            let fctx = proj_create_operation_factory_context(ctx, std::ptr::null());
            let ops = if wgs84.is_null() || fctx.is_null() { std::ptr::null_mut() } else { proj_create_operations(ctx, crs, wgs84, fctx) };
            ballpark = true;
            if !ops.is_null() {
                if proj_list_get_count(ops) > 0 {
                    let op = proj_list_get(ctx, ops, 0);
                    if !op.is_null() {
                        ballpark = proj_coordoperation_has_ballpark_transformation(ctx, op) != 0;
                        proj_destroy(op);
                    }
                }
                proj_list_destroy(ops);
            }
            if !fctx.is_null() {
                proj_operation_factory_context_destroy(fctx);
            }
            if !wgs84.is_null() {
                proj_destroy(wgs84);
            }
        }
        let (mut w, mut s, mut e, mut n) = (0.0, 0.0, 0.0, 0.0);
        let has_area = proj_get_area_of_use(ctx, crs, &mut w, &mut s, &mut e, &mut n, std::ptr::null_mut()) != 0;
        proj_destroy(crs);
        proj_context_destroy(ctx);
        let area = if has_area && w > -1000.0 && w <= e {
            Area {
                west: (w - super::ZONE_MARGIN_DEG).max(-180.0),
                south: (s - super::ZONE_MARGIN_DEG).max(-90.0),
                east: (e + super::ZONE_MARGIN_DEG).min(180.0),
                north: (n + super::ZONE_MARGIN_DEG).min(90.0),
            }
        } else {
            Area::WORLD
        };
        if ballpark {
            return Err(CrsError::NoDatumShift(name));
        }
        Ok((name, axis, area, geographic))
    }
}

pub fn from_epsg(code: u32) -> Result<Crs, CrsError> {
    let def = format!("EPSG:{code}");
    let (name, axis, area, geographic) = describe(&def).map_err(|e| match e {
        CrsError::Proj(_) => CrsError::UnknownEpsg(code),
        e => e,
    })?;
    Pair::new(&def)?;
    Ok(Crs { name, epsg: Some(code), axis, area, definition: None, engine: Engine::Proj { def, geographic } })
}

pub fn from_wkt(text: &str) -> Result<Crs, CrsError> {
    let (name, _, area, geographic) = describe(text)?;
    Pair::new(text)?;
    Ok(Crs {
        name,
        epsg: None,
        // A .prj's coordinates are easting-first whatever its axes say.
        axis: AxisOrder::EastNorth,
        area,
        definition: None,
        engine: Engine::Proj { def: text.to_owned(), geographic },
    })
}
