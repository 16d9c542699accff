//! ComponentIndex against brute force on the mesh fixture's components.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use geo_types::{Coord, Rect};
use proptest::prelude::*;

use super::ComponentIndex;
use super::component::BboxStrategy;
use super::fixtures::{self, Mesh};
use crate::crs::haversine_m;
use crate::model::{City, ClassCode, ComponentCode};

struct Fixture {
    city: City,
    index: ComponentIndex,
    extent: Rect<f64>,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let city = fixtures::mesh_city(&Mesh::small(2));
        let index = ComponentIndex::build(&city);
        let extent = index_extent(&city);
        Fixture { city, index, extent }
    })
}

fn index_extent(city: &City) -> Rect<f64> {
    let xs = city.components.iter().map(|c| c.location.x);
    let ys = city.components.iter().map(|c| c.location.y);
    Rect::new(
        Coord { x: xs.clone().fold(f64::INFINITY, f64::min), y: ys.clone().fold(f64::INFINITY, f64::min) },
        Coord { x: xs.fold(f64::NEG_INFINITY, f64::max), y: ys.fold(f64::NEG_INFINITY, f64::max) },
    )
}

/// Class filters to try, as strings (parsed per case).
const FILTERS: &[Option<&[&str]>] = &[
    None,
    Some(&[]),
    Some(&["0101"]),
    Some(&["01"]),
    Some(&["0138"]),
    Some(&["03"]),
    Some(&["0138", "0301"]),
    Some(&["0105", "0138", "0301"]),
    Some(&["0402", "0136"]),
    Some(&["04", "0138"]),
    Some(&["0999"]),
];

fn parse(filter: Option<&[&str]>) -> Option<Vec<ClassCode>> {
    filter.map(|f| f.iter().map(|s| ClassCode::parse(s).unwrap()).collect())
}

/// The oracle's own reading of a filter: listed subclass, or listed major class.
fn oracle_matches(filter: &Option<Vec<ClassCode>>, c: ClassCode) -> bool {
    match filter {
        None => true,
        Some(f) if f.is_empty() => true,
        Some(f) => f.iter().any(|&x| x == c || (x.is_major() && x.major() == c.major())),
    }
}

/// All matching components with their haversine distance, by (distance, code).
fn brute_force(city: &City, p: Coord<f64>, filter: &Option<Vec<ClassCode>>) -> Vec<(f64, ComponentCode, u32)> {
    let mut all: Vec<(f64, ComponentCode, u32)> = city
        .components
        .iter()
        .enumerate()
        .filter(|(_, c)| oracle_matches(filter, c.class))
        .map(|(i, c)| (haversine_m(p, c.location), c.code, i as u32))
        .collect();
    all.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    all
}

fn point_strategy() -> impl Strategy<Value = Coord<f64>> {
    let f = fixture();
    let (x0, y0, w, h) = (f.extent.min().x, f.extent.min().y, f.extent.width(), f.extent.height());
    let n = f.city.components.len();
    prop_oneof![
        (-0.3..1.3f64, -0.3..1.3f64).prop_map(move |(a, b)| Coord { x: x0 + a * w, y: y0 + b * h }),
        // Exactly at a component (distance 0, and ties with duplicates).
        (0..n).prop_map(move |i| fixture().city.components[i].location),
        // Far away: the brute-force path.
        Just(Coord { x: -70.0, y: 40.0 }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1500))]

    #[test]
    fn nearest_equals_brute_force(
        p in point_strategy(),
        k in prop_oneof![1usize..4, 1usize..40, Just(0usize)],
        fi in 0..FILTERS.len(),
        max in prop_oneof![Just(None), (0.0..600.0f64).prop_map(Some), Just(Some(f64::NAN))],
    ) {
        let f = fixture();
        let filter = parse(FILTERS[fi]);
        let got = f.index.nearest(&f.city, p, k, filter.as_deref(), max);
        let want: Vec<(u32, f64)> = if max.is_some_and(f64::is_nan) {
            Vec::new()
        } else {
            brute_force(&f.city, p, &filter)
                .into_iter()
                .filter(|h| max.is_none_or(|m| h.0 <= m))
                .take(k)
                .map(|h| (h.2, h.0))
                .collect()
        };
        prop_assert_eq!(got, want, "p {:?} k {} filter {:?} max {:?}", p, k, FILTERS[fi], max);
    }

    #[test]
    fn within_equals_brute_force(
        p in point_strategy(),
        r in prop_oneof![0.0..400.0f64, Just(0.0), Just(-1.0)],
        fi in 0..FILTERS.len(),
    ) {
        let f = fixture();
        let filter = parse(FILTERS[fi]);
        let got = f.index.within(&f.city, p, r, filter.as_deref());
        let want: Vec<(u32, f64)> =
            brute_force(&f.city, p, &filter).into_iter().filter(|h| h.0 <= r).map(|h| (h.2, h.0)).collect();
        prop_assert_eq!(got, want, "p {:?} r {} filter {:?}", p, r, FILTERS[fi]);
    }

    #[test]
    fn bbox_pages_walk_every_component_once_in_code_order(
        corners in box_strategy(),
        fi in 0..FILTERS.len(),
        limit in prop_oneof![1usize..5, 1usize..200],
        strategy in prop_oneof![Just(None), Just(Some(BboxStrategy::Spatial)), Just(Some(BboxStrategy::CodeWalk))],
    ) {
        let f = fixture();
        let filter = parse(FILTERS[fi]);
        let bbox = Rect::new(corners.0, corners.1);
        let want: Vec<u32> = in_box_sorted(&f.city, bbox, &filter);
        let mut got = Vec::new();
        let mut cursor = None;
        for page_no in 0.. {
            let (page, next) = f.index.in_bbox_with(&f.city, bbox, filter.as_deref(), cursor, limit, strategy);
            prop_assert!(page.len() <= limit);
            got.extend_from_slice(&page);
            match next {
                Some(c) => {
                    prop_assert_eq!(page.len(), limit, "only a full page has a next cursor");
                    prop_assert_eq!(Some(c), page.last().map(|&i| f.city.components[i as usize].code));
                    cursor = Some(c);
                }
                None => {
                    prop_assert!(!page.is_empty() || page_no == 0, "an empty page after a cursor");
                    break;
                }
            }
            prop_assert!(page_no < 10_000);
        }
        prop_assert_eq!(got, want);
    }

    #[test]
    fn count_by_class_equals_brute_force(corners in box_strategy(), fi in 0..FILTERS.len()) {
        let f = fixture();
        let filter = parse(FILTERS[fi]);
        let bbox = Rect::new(corners.0, corners.1);
        let mut want: BTreeMap<ClassCode, usize> = BTreeMap::new();
        for i in in_box_sorted(&f.city, bbox, &filter) {
            *want.entry(f.city.components[i as usize].class).or_default() += 1;
        }
        prop_assert_eq!(f.index.count_by_class(&f.city, bbox, filter.as_deref()), want);
    }
}

/// Box corners: random, degenerate (a point at a component), edges through components, or
/// everything.
fn box_strategy() -> impl Strategy<Value = (Coord<f64>, Coord<f64>)> {
    let f = fixture();
    let (x0, y0, w, h) = (f.extent.min().x, f.extent.min().y, f.extent.width(), f.extent.height());
    let n = f.city.components.len();
    let at = move |i: usize| fixture().city.components[i].location;
    prop_oneof![
        (-0.2..1.2f64, -0.2..1.2f64, -0.2..1.2f64, -0.2..1.2f64)
            .prop_map(move |(a, b, c, d)| (Coord { x: x0 + a * w, y: y0 + b * h }, Coord { x: x0 + c * w, y: y0 + d * h })),
        (0..n).prop_map(move |i| (at(i), at(i))),
        (0..n, 0..n).prop_map(move |(i, j)| (at(i), at(j))),
        Just((Coord { x: x0 - 1.0, y: y0 - 1.0 }, Coord { x: x0 + w + 1.0, y: y0 + h + 1.0 })),
        Just((f.extent.min(), f.extent.max())),
    ]
}

fn in_box_sorted(city: &City, bbox: Rect<f64>, filter: &Option<Vec<ClassCode>>) -> Vec<u32> {
    let (min, max) = (bbox.min(), bbox.max());
    let mut v: Vec<(ComponentCode, u32)> = city
        .components
        .iter()
        .enumerate()
        .filter(|(_, c)| oracle_matches(filter, c.class) && c.location.x >= min.x && c.location.x <= max.x && c.location.y >= min.y && c.location.y <= max.y)
        .map(|(i, c)| (c.code, i as u32))
        .collect();
    v.sort();
    v.into_iter().map(|x| x.1).collect()
}

#[test]
fn rare_classes_get_their_own_tree_and_ties_go_by_code() {
    let f = fixture();
    let own = f.index.own_tree_classes();
    let c = |s: &str| ClassCode::parse(s).unwrap();
    assert!(own.contains(&c("0138")) && own.contains(&c("0301")), "{own:?}");
    assert!(!own.contains(&c("0101")) && !own.contains(&c("0136")), "{own:?}");
    // The fixture puts every 50th component on an earlier one's spot.
    let dup = &f.city.components[100];
    let at_dup = f.index.within(&f.city, dup.location, 0.0, None);
    assert!(at_dup.len() >= 2, "{at_dup:?}");
    let codes: Vec<ComponentCode> = at_dup.iter().map(|&(i, _)| f.city.components[i as usize].code).collect();
    assert!(codes.windows(2).all(|w| w[0] < w[1]), "{codes:?}");
    assert!(at_dup.iter().all(|&(_, d)| d == 0.0));
}

#[test]
fn memory_stays_compact() {
    let f = fixture();
    let per = f.index.memory_bytes() as f64 / f.city.components.len() as f64;
    assert!(per < 80.0, "{per} B/component");
}

#[test]
fn an_empty_city_answers_nothing() {
    let city = fixtures::builder().finish().unwrap();
    let index = ComponentIndex::build(&city);
    let p = Coord { x: 120.6, y: 31.3 };
    assert!(index.nearest(&city, p, 5, None, None).is_empty());
    assert!(index.within(&city, p, 100.0, None).is_empty());
    let bbox = Rect::new(Coord { x: 0.0, y: 0.0 }, Coord { x: 180.0, y: 90.0 });
    assert_eq!(index.in_bbox(&city, bbox, None, None, 10), (vec![], None));
    assert!(index.count_by_class(&city, bbox, None).is_empty());
}
