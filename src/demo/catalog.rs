//! City-specific data of the demo presets: districts and their streets, responsible units,
//! the component class mix and who owns what.

use super::Preset;

/// The city a preset lies in; decides unit names, phone area codes and name styles.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CityKind {
    Suzhou,
    Beijing,
}

/// Everything fixed about a preset.
pub(crate) struct PresetInfo {
    pub county: u32,
    /// District name, e.g. `吴中区`.
    pub district: &'static str,
    /// City name shown to users, e.g. `吴中区 (demo)`.
    pub label: &'static str,
    pub city: CityKind,
    /// lon, lat of the centre.
    pub center: [f64; 2],
    pub area_km2: f64,
    /// Street names in code order within each kind; `true` marks a town (镇).
    pub streets: &'static [(&'static str, bool)],
    pub communities: usize,
    pub grids: usize,
    pub components: usize,
}

const WUZHONG_STREETS: &[(&str, bool)] = &[
    ("长桥街道", false),
    ("苏苑街道", false),
    ("龙西街道", false),
    ("城南街道", false),
    ("越溪街道", false),
    ("郭巷街道", false),
    ("横泾街道", false),
    ("香山街道", false),
    ("太湖街道", false),
    ("木渎镇", true),
    ("甪直镇", true),
    ("胥口镇", true),
    ("临湖镇", true),
    ("光福镇", true),
];

const XICHENG_STREETS: &[(&str, bool)] = &[
    ("西长安街街道", false),
    ("新街口街道", false),
    ("月坛街道", false),
    ("展览路街道", false),
    ("德胜街道", false),
    ("金融街街道", false),
    ("什刹海街道", false),
    ("大栅栏街道", false),
    ("天桥街道", false),
    ("椿树街道", false),
    ("陶然亭街道", false),
    ("广安门内街道", false),
    ("牛街街道", false),
    ("白纸坊街道", false),
    ("广安门外街道", false),
];

const TINY_STREETS: &[(&str, bool)] = &[("长桥街道", false), ("郭巷街道", false), ("木渎镇", true)];

impl PresetInfo {
    pub fn of(preset: Preset) -> PresetInfo {
        match preset {
            Preset::Tiny => PresetInfo {
                county: 320506,
                district: "吴中区",
                label: "吴中区 (tiny demo)",
                city: CityKind::Suzhou,
                center: [120.63, 31.26],
                area_km2: 2.0,
                streets: TINY_STREETS,
                communities: 6,
                grids: 36,
                components: 2_000,
            },
            Preset::Wuzhong => PresetInfo {
                county: 320506,
                district: "吴中区",
                label: "吴中区 (demo)",
                city: CityKind::Suzhou,
                center: [120.63, 31.26],
                area_km2: 52.3,
                streets: WUZHONG_STREETS,
                communities: 212,
                grids: 945,
                components: 231_000,
            },
            Preset::Xicheng => PresetInfo {
                county: 110102,
                district: "西城区",
                label: "西城区 (demo)",
                city: CityKind::Beijing,
                center: [116.36, 39.91],
                area_km2: 50.7,
                streets: XICHENG_STREETS,
                communities: 263,
                grids: 1_623,
                components: 610_440,
            },
        }
    }
}

/// The office of a street or town: `长桥街道办事处`, `木渎镇人民政府`.
pub(crate) fn office(street: &str, town: bool) -> String {
    if town { format!("{street}人民政府") } else { format!("{street}办事处") }
}

/// A street's sanitation station: `长桥街道环卫所`.
pub(crate) fn sanitation_station(street: &str) -> String {
    format!("{street}环卫所")
}

/// A role that stands for a unit; resolved per city by [`unit`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum U {
    Bureau,
    Enforcement,
    Emergency,
    Sanitation,
    Municipal,
    LightingOwner,
    Lighting,
    WaterDept,
    WaterCo,
    Water,
    DrainOwner,
    Drain,
    River,
    PowerDept,
    PowerCo,
    Power,
    EvCo,
    TelecomDept,
    /// One of the three carriers, picked per component (owner and maintainer agree).
    Telecom,
    CableDept,
    CableCo,
    Cable,
    HeatCo,
    Heat,
    GasDept,
    GasCo,
    Gas,
    Police,
    PoliceTech,
    Fire,
    Traffic,
    TrafficMaint,
    Transport,
    Bus,
    Parking,
    KioskCo,
    PostDept,
    Post,
    SportsDept,
    Civil,
    AdCentre,
    GreeneryDept,
    Greenery,
    Propaganda,
    Development,
    Env,
    Housing,
    /// The office of the component's street (街道办事处 / 镇人民政府).
    Street,
    /// The sanitation station of the component's street.
    StreetEnv,
}

/// Telecom carriers: (owner, maintainer) per city.
pub(crate) fn carriers(city: CityKind) -> [(&'static str, &'static str); 3] {
    match city {
        CityKind::Suzhou => [
            ("中国电信股份有限公司苏州分公司", "中国电信股份有限公司苏州吴中分公司"),
            ("中国移动通信集团江苏有限公司苏州分公司", "中国移动通信集团江苏有限公司苏州吴中分公司"),
            ("中国联合网络通信有限公司苏州市分公司", "中国联合网络通信有限公司苏州市吴中区分公司"),
        ],
        CityKind::Beijing => [
            ("中国电信股份有限公司北京分公司", "中国电信股份有限公司北京西城分公司"),
            ("中国移动通信集团北京有限公司", "中国移动通信集团北京有限公司西城分公司"),
            ("中国联合网络通信有限公司北京市分公司", "中国联合网络通信有限公司北京市西城区分公司"),
        ],
    }
}

/// The unit a role stands for in a city. `Telecom`, `Street` and `StreetEnv` depend on the
/// component and are resolved by the caller; here they give a representative name.
pub(crate) fn unit(city: CityKind, u: U) -> &'static str {
    use CityKind::*;
    match (city, u) {
        (Suzhou, U::Bureau) => "吴中区城市管理局",
        (Suzhou, U::Enforcement) => "吴中区综合行政执法局",
        (Suzhou, U::Emergency) => "吴中区应急管理局",
        (Suzhou, U::Sanitation) => "吴中区环境卫生管理处",
        (Suzhou, U::Municipal) => "吴中区市政工程管理处",
        (Suzhou, U::LightingOwner) => "吴中区市政工程管理处",
        (Suzhou, U::Lighting) => "吴中区路灯管理所",
        (Suzhou, U::WaterDept) => "吴中区水务局",
        (Suzhou, U::WaterCo) => "苏州市自来水有限公司",
        (Suzhou, U::Water) => "苏州市自来水有限公司吴中分公司",
        (Suzhou, U::DrainOwner) => "吴中区水务局",
        (Suzhou, U::Drain) => "吴中区排水管理处",
        (Suzhou, U::River) => "吴中区河道管理处",
        (Suzhou, U::PowerDept) => "吴中区工业和信息化局",
        (Suzhou, U::PowerCo) => "国网苏州供电公司",
        (Suzhou, U::Power) => "国网苏州市吴中区供电公司",
        (Suzhou, U::EvCo) => "国网江苏电动汽车服务有限公司",
        (Suzhou, U::TelecomDept) => "苏州市通信管理办公室",
        (Suzhou, U::CableDept) => "吴中区文体广电和旅游局",
        (Suzhou, U::CableCo) => "江苏有线苏州分公司",
        (Suzhou, U::Cable) => "江苏有线吴中分公司",
        (Suzhou, U::HeatCo | U::Heat) => "吴中区住房和城乡建设局",
        (Suzhou, U::GasDept) => "吴中区住房和城乡建设局",
        (Suzhou, U::GasCo) => "苏州港华燃气有限公司",
        (Suzhou, U::Gas) => "苏州港华燃气有限公司吴中分公司",
        (Suzhou, U::Police) => "苏州市公安局吴中分局",
        (Suzhou, U::PoliceTech) => "苏州市公安局吴中分局科技通信科",
        (Suzhou, U::Fire) => "吴中区消防救援大队",
        (Suzhou, U::Traffic) => "苏州市公安局交通警察支队吴中大队",
        (Suzhou, U::TrafficMaint) => "吴中区交通设施管理所",
        (Suzhou, U::Transport) => "吴中区交通运输局",
        (Suzhou, U::Bus) => "苏州市公共交通有限公司",
        (Suzhou, U::Parking) => "吴中区停车管理中心",
        (Suzhou, U::KioskCo) => "苏州日报报业集团发行有限公司",
        (Suzhou, U::PostDept) => "苏州市邮政管理局",
        (Suzhou, U::Post) => "中国邮政集团有限公司苏州市吴中区分公司",
        (Suzhou, U::SportsDept) => "吴中区文体广电和旅游局",
        (Suzhou, U::Civil) => "吴中区民政局",
        (Suzhou, U::AdCentre) => "吴中区户外广告管理中心",
        (Suzhou, U::GreeneryDept) => "吴中区住房和城乡建设局",
        (Suzhou, U::Greenery) => "吴中区园林绿化管理处",
        (Suzhou, U::Propaganda) => "中共吴中区委宣传部",
        (Suzhou, U::Development) => "吴中区发展和改革委员会",
        (Suzhou, U::Env) => "苏州市吴中生态环境局",
        (Suzhou, U::Housing) => "吴中区住房和城乡建设局",
        (Beijing, U::Bureau) => "西城区城市管理委员会",
        (Beijing, U::Enforcement) => "西城区城市管理综合行政执法局",
        (Beijing, U::Emergency) => "西城区应急管理局",
        (Beijing, U::Sanitation) => "西城区环境卫生服务中心",
        (Beijing, U::Municipal) => "西城区市政市容管理服务中心",
        (Beijing, U::LightingOwner) => "北京市城市照明管理中心",
        (Beijing, U::Lighting) => "北京市城市照明管理中心西城分中心",
        (Beijing, U::WaterDept) => "西城区水务局",
        (Beijing, U::WaterCo) => "北京市自来水集团有限责任公司",
        (Beijing, U::Water) => "北京市自来水集团西城分公司",
        (Beijing, U::DrainOwner) => "北京城市排水集团有限责任公司",
        (Beijing, U::Drain) => "北京城市排水集团西城排水管理所",
        (Beijing, U::River) => "西城区河湖管理所",
        (Beijing, U::PowerDept) => "西城区城市管理委员会",
        (Beijing, U::PowerCo) => "国网北京市电力公司",
        (Beijing, U::Power) => "国网北京西城供电公司",
        (Beijing, U::EvCo) => "国网北京电动汽车服务有限公司",
        (Beijing, U::TelecomDept) => "北京市通信管理局",
        (Beijing, U::CableDept) => "西城区文化和旅游局",
        (Beijing, U::CableCo) => "北京歌华有线电视网络股份有限公司",
        (Beijing, U::Cable) => "北京歌华有线电视网络股份有限公司西城分公司",
        (Beijing, U::HeatCo) => "北京市热力集团有限责任公司",
        (Beijing, U::Heat) => "北京市热力集团西城分公司",
        (Beijing, U::GasDept) => "西城区城市管理委员会",
        (Beijing, U::GasCo) => "北京市燃气集团有限责任公司",
        (Beijing, U::Gas) => "北京市燃气集团第一分公司",
        (Beijing, U::Police) => "北京市公安局西城分局",
        (Beijing, U::PoliceTech) => "北京市公安局西城分局科技信息化科",
        (Beijing, U::Fire) => "西城区消防救援支队",
        (Beijing, U::Traffic) => "北京市公安局公安交通管理局西城交通支队",
        (Beijing, U::TrafficMaint) => "北京市交通设施管理中心西城管理所",
        (Beijing, U::Transport) => "西城区交通委员会",
        (Beijing, U::Bus) => "北京公共交通控股(集团)有限公司",
        (Beijing, U::Parking) => "西城区停车管理中心",
        (Beijing, U::KioskCo) => "北京市报刊发行局",
        (Beijing, U::PostDept) => "北京市邮政管理局",
        (Beijing, U::Post) => "中国邮政集团有限公司北京市西城区分公司",
        (Beijing, U::SportsDept) => "西城区体育局",
        (Beijing, U::Civil) => "西城区民政局",
        (Beijing, U::AdCentre) => "西城区户外广告设施管理中心",
        (Beijing, U::GreeneryDept) => "西城区园林绿化局",
        (Beijing, U::Greenery) => "西城区园林绿化服务中心",
        (Beijing, U::Propaganda) => "中共西城区委宣传部",
        (Beijing, U::Development) => "西城区发展和改革委员会",
        (Beijing, U::Env) => "北京市西城区生态环境局",
        (Beijing, U::Housing) => "西城区住房和城市建设委员会",
        (_, U::Telecom) => carriers(city)[0].0,
        (_, U::Street) => "街道办事处",
        (_, U::StreetEnv) => "街道环卫所",
    }
}

/// Where a component class stands along the roads.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Placement {
    /// Share of components placed near a road intersection rather than along a block edge.
    pub corner: f64,
    /// Offset from the road centreline, metres (min, max).
    pub offset: (f64, f64),
}

/// One component class of the demo mix.
pub(crate) struct ClassMix {
    pub code: &'static str,
    /// Relative weights in Suzhou and in Beijing.
    pub weight: [f64; 2],
    pub place: Placement,
    /// 主管部门, 权属单位, 养护单位.
    pub units: [U; 3],
}

const fn c(code: &'static str, w: [f64; 2], corner: f64, offset: (f64, f64), units: [U; 3]) -> ClassMix {
    ClassMix { code, weight: w, place: Placement { corner, offset }, units }
}

const COVER: (f64, f64) = (2.0, 8.0);
const KERB: (f64, f64) = (6.0, 12.0);
const SIDEWALK: (f64, f64) = (8.0, 12.0);

/// The class mix: manhole covers ≈ 50 %, street lamps ≈ 17 %, cameras ≈ 3 %, police booths
/// ≈ 0.5 %, traffic lights ≈ 1.5 % (at intersections), and a long tail.
pub(crate) const CLASS_MIX: &[ClassMix] = &[
    c("0101", [9.0, 8.5], 0.0, COVER, [U::WaterDept, U::WaterCo, U::Water]),
    c("0102", [9.0, 8.0], 0.0, COVER, [U::WaterDept, U::DrainOwner, U::Drain]),
    c("0103", [9.0, 8.0], 0.0, COVER, [U::WaterDept, U::DrainOwner, U::Drain]),
    c("0104", [5.5, 5.0], 0.0, (5.0, 10.0), [U::WaterDept, U::DrainOwner, U::Drain]),
    c("0105", [5.0, 5.0], 0.0, COVER, [U::PowerDept, U::PowerCo, U::Power]),
    c("0106", [2.5, 2.5], 0.0, KERB, [U::Bureau, U::LightingOwner, U::Lighting]),
    c("0107", [4.5, 4.5], 0.0, COVER, [U::TelecomDept, U::Telecom, U::Telecom]),
    c("0108", [1.0, 1.0], 0.0, COVER, [U::CableDept, U::CableCo, U::Cable]),
    c("0109", [1.0, 1.0], 0.0, COVER, [U::TelecomDept, U::Telecom, U::Telecom]),
    c("0110", [0.0, 2.0], 0.0, COVER, [U::Bureau, U::HeatCo, U::Heat]),
    c("0111", [2.5, 2.5], 0.0, COVER, [U::GasDept, U::GasCo, U::Gas]),
    c("0112", [1.0, 1.5], 0.0, COVER, [U::Police, U::Police, U::Police]),
    c("0113", [1.2, 1.2], 0.0, (4.0, 10.0), [U::Fire, U::WaterCo, U::Water]),
    c("0116", [0.5, 0.5], 0.0, KERB, [U::PowerDept, U::PowerCo, U::Power]),
    c("0117", [4.0, 4.0], 0.0, KERB, [U::Bureau, U::Municipal, U::Municipal]),
    c("0118", [18.0, 18.0], 0.0, SIDEWALK, [U::Bureau, U::LightingOwner, U::Lighting]),
    c("0121", [0.3, 0.4], 0.0, SIDEWALK, [U::Bureau, U::KioskCo, U::KioskCo]),
    c("0123", [0.1, 0.1], 0.0, SIDEWALK, [U::PostDept, U::Post, U::Post]),
    c("0126", [0.3, 0.3], 0.0, KERB, [U::SportsDept, U::Street, U::Street]),
    c("0127", [0.6, 0.6], 0.0, SIDEWALK, [U::TelecomDept, U::Telecom, U::Telecom]),
    c("0128", [0.3, 0.3], 0.0, SIDEWALK, [U::PowerDept, U::PowerCo, U::Power]),
    c("0129", [0.3, 0.3], 0.0, KERB, [U::Development, U::PowerCo, U::EvCo]),
    c("0132", [0.3, 0.3], 0.0, COVER, [U::Bureau, U::Sanitation, U::Sanitation]),
    c("0133", [0.6, 0.6], 0.0, SIDEWALK, [U::PowerDept, U::PowerCo, U::Power]),
    c("0134", [1.0, 1.0], 0.0, COVER, [U::WaterDept, U::WaterCo, U::Water]),
    c("0135", [0.2, 0.2], 0.0, SIDEWALK, [U::GasDept, U::GasCo, U::Gas]),
    c("0136", [3.0, 3.2], 0.6, KERB, [U::Police, U::Police, U::PoliceTech]),
    c("0138", [0.5, 0.5], 0.5, SIDEWALK, [U::Police, U::Police, U::Police]),
    c("0202", [0.3, 0.4], 0.0, (5.0, 10.0), [U::Bureau, U::Parking, U::Parking]),
    c("0203", [0.6, 0.6], 0.0, SIDEWALK, [U::Transport, U::Bus, U::Bus]),
    c("0209", [2.0, 2.0], 0.3, SIDEWALK, [U::Traffic, U::Traffic, U::TrafficMaint]),
    c("0210", [1.5, 1.5], 1.0, KERB, [U::Traffic, U::Traffic, U::TrafficMaint]),
    c("0211", [0.8, 0.8], 0.0, (2.0, 6.0), [U::Traffic, U::Traffic, U::TrafficMaint]),
    c("0213", [1.0, 1.0], 0.7, SIDEWALK, [U::Civil, U::Civil, U::Municipal]),
    c("0216", [0.5, 0.5], 0.0, SIDEWALK, [U::Bureau, U::Municipal, U::Municipal]),
    c("0219", [0.4, 0.5], 0.0, SIDEWALK, [U::Bureau, U::Street, U::Street]),
    c("0301", [0.3, 0.4], 0.0, (9.0, 12.0), [U::Bureau, U::Sanitation, U::Sanitation]),
    c("0304", [0.05, 0.05], 0.0, (9.0, 12.0), [U::Bureau, U::Sanitation, U::Sanitation]),
    c("0305", [4.0, 4.0], 0.0, KERB, [U::Bureau, U::Sanitation, U::StreetEnv]),
    c("0307", [1.0, 1.2], 0.0, (9.0, 12.0), [U::Bureau, U::AdCentre, U::AdCentre]),
    c("0310", [0.4, 0.4], 0.0, (9.0, 12.0), [U::Bureau, U::AdCentre, U::AdCentre]),
    c("0401", [0.05, 0.1], 0.0, KERB, [U::GreeneryDept, U::Greenery, U::Greenery]),
    c("0402", [8.0, 8.0], 0.0, (6.0, 11.0), [U::GreeneryDept, U::Greenery, U::Greenery]),
    c("0403", [0.5, 0.5], 0.0, (6.0, 11.0), [U::GreeneryDept, U::Greenery, U::Greenery]),
    c("0404", [0.4, 0.4], 0.0, SIDEWALK, [U::GreeneryDept, U::Greenery, U::Greenery]),
    c("0407", [0.4, 0.4], 0.0, SIDEWALK, [U::GreeneryDept, U::Greenery, U::Greenery]),
    c("0501", [0.4, 0.4], 0.0, SIDEWALK, [U::Propaganda, U::Street, U::Street]),
    c("0604", [0.3, 0.15], 0.0, KERB, [U::WaterDept, U::River, U::River]),
];

/// Urgency levels of the responsibility list.
pub(crate) const NORMAL: &str = "一般";
pub(crate) const URGENT: &str = "紧急";
pub(crate) const VERY_URGENT: &str = "非常紧急";

/// Who handles an event: a unit role or a rule role (`@street`).
#[derive(Clone, Copy, Debug)]
pub(crate) enum Handler {
    Unit(U),
    Role(&'static str),
}

/// Default district-wide event rules: (event subclass, handler, urgency, time limit).
/// Subclasses missing here fall back to the street office ([`event_fallback`]).
pub(crate) const EVENT_RULES: &[(&str, Handler, &str, &str)] = {
    use Handler::{Role, Unit};
    &[
        ("0101", Role("@street"), NORMAL, "20wd"),
        ("0101", Unit(U::Enforcement), URGENT, "4wh"),
        ("0102", Unit(U::Sanitation), NORMAL, "4wh"),
        ("0102", Unit(U::Sanitation), URGENT, "2wh"),
        ("0103", Unit(U::Sanitation), NORMAL, "1wd"),
        ("0104", Unit(U::Sanitation), NORMAL, "2wh"),
        ("0104", Unit(U::Sanitation), URGENT, "1wh"),
        ("0105", Unit(U::River), NORMAL, "1wd"),
        ("0106", Unit(U::Greenery), NORMAL, "1wd"),
        ("0107", Unit(U::Traffic), NORMAL, "7cd"),
        ("0108", Role("@street"), NORMAL, "1wd"),
        ("0109", Unit(U::Enforcement), NORMAL, "2wh"),
        ("0110", Unit(U::Env), NORMAL, "3cd"),
        ("0111", Unit(U::Sanitation), NORMAL, "4wh"),
        ("0199", Role("@street"), NORMAL, "3wd"),
        ("0201", Unit(U::Sanitation), NORMAL, "1wd"),
        ("0202", Unit(U::Enforcement), NORMAL, "5wd"),
        ("0203", Unit(U::Enforcement), NORMAL, "1wd"),
        ("0204", Unit(U::Enforcement), NORMAL, "4wh"),
        ("0299", Role("@street"), NORMAL, "3wd"),
        ("0301", Unit(U::Housing), NORMAL, "1wd"),
        ("0302", Unit(U::Housing), NORMAL, "1wd"),
        ("0303", Unit(U::Sanitation), NORMAL, "4wh"),
        ("0304", Unit(U::Housing), NORMAL, "2wd"),
        ("0305", Unit(U::Enforcement), NORMAL, "2wd"),
        ("0306", Unit(U::Enforcement), NORMAL, "1wd"),
        ("0399", Unit(U::Housing), NORMAL, "3wd"),
        ("0401", Unit(U::Municipal), URGENT, "4wh"),
        ("0401", Unit(U::Municipal), VERY_URGENT, "1wh"),
        ("0402", Unit(U::Water), URGENT, "4wh"),
        ("0402", Unit(U::Water), VERY_URGENT, "2wh"),
        ("0403", Unit(U::Gas), URGENT, "2wh"),
        ("0403", Unit(U::Gas), VERY_URGENT, "1wh"),
        ("0404", Unit(U::Drain), URGENT, "4wh"),
        ("0405", Unit(U::Heat), URGENT, "4wh"),
        ("0406", Unit(U::Drain), URGENT, "2wh"),
        ("0407", Unit(U::Municipal), URGENT, "4wh"),
        ("0408", Unit(U::Fire), URGENT, "1wh"),
        ("0499", Role("@street"), URGENT, "4wh"),
        ("0501", Unit(U::Enforcement), NORMAL, "2wh"),
        ("0502", Unit(U::Civil), NORMAL, "1wd"),
        ("0503", Unit(U::Enforcement), NORMAL, "1wd"),
        ("0504", Unit(U::Enforcement), NORMAL, "4wh"),
        ("0505", Unit(U::Traffic), NORMAL, "2wh"),
        ("0506", Role("@street"), NORMAL, "4wh"),
        ("0507", Role("@street"), NORMAL, "1wd"),
        ("0508", Unit(U::Transport), NORMAL, "1wd"),
        ("0509", Unit(U::Env), NORMAL, "1wd"),
        ("0510", Unit(U::Enforcement), NORMAL, "2wh"),
        ("0599", Role("@street"), NORMAL, "3wd"),
    ]
};

/// Rule for an event subclass the table above does not know (e.g. a newer class file):
/// the street office, urgent for emergencies (major class 04).
pub(crate) fn event_fallback(major: u8) -> (Handler, &'static str, &'static str) {
    if major == 4 { (Handler::Role("@street"), URGENT, "4wh") } else { (Handler::Role("@street"), NORMAL, "3wd") }
}
