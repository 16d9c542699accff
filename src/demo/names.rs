//! Plausible Chinese names: people (grid chiefs), mobile and office phones, communities.

use rand::Rng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use super::catalog::CityKind;

const SURNAMES: &[&str] = &[
    "王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周", "徐", "孙", "马", "朱", "胡", "郭", "何", "高", "林", "罗", "郑", "梁", "谢", "宋", "唐", "许",
    "韩", "冯", "邓", "曹", "彭", "曾", "肖", "田", "董", "袁", "潘", "于", "蒋", "蔡", "余", "杜", "叶", "程", "苏", "魏", "吕", "丁", "任", "沈", "姚", "卢",
    "姜", "崔", "钟", "谭", "陆", "汪", "范", "金", "石", "顾", "钱", "严", "邵", "葛", "缪", "浦", "殷", "季",
];

const GIVEN: &[&str] = &[
    "伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟", "涛", "明", "超", "秀", "霞", "平", "刚", "桂", "英", "华", "玉", "兰",
    "萍", "红", "建", "文", "辉", "力", "斌", "宇", "浩", "凯", "鹏", "丹", "玲", "婷", "雪", "琳", "晨", "欣", "怡", "俊", "峰", "晓", "雅", "云", "飞", "鑫",
    "波", "宁", "林", "海", "梅", "凤", "志", "国", "庆", "春", "燕", "荣", "健", "亮", "成", "龙", "新", "宏", "颖", "慧", "倩", "佳", "嘉", "思", "晶", "蓉",
    "立", "德", "永", "卫", "东", "琴", "群", "彬", "振", "晴",
];

/// Mobile prefixes of the three carriers.
const MOBILE_PREFIXES: &[&str] = &[
    "130", "131", "132", "133", "135", "136", "137", "138", "139", "150", "151", "152", "153", "155", "156", "157", "158", "159", "166", "173", "177", "180",
    "181", "182", "183", "185", "186", "187", "188", "189", "191", "198", "199",
];

/// A person's name: a surname and a one- or two-character given name.
pub(crate) fn person(rng: &mut ChaCha8Rng) -> String {
    let mut name = String::from(SURNAMES[rng.random_range(0..SURNAMES.len())]);
    let n = if rng.random_bool(0.3) { 1 } else { 2 };
    for _ in 0..n {
        name.push_str(GIVEN[rng.random_range(0..GIVEN.len())]);
    }
    name
}

/// An 11-digit mainland mobile number, e.g. `13862081234`.
pub(crate) fn mobile(rng: &mut ChaCha8Rng) -> String {
    format!("{}{:08}", MOBILE_PREFIXES[rng.random_range(0..MOBILE_PREFIXES.len())], rng.random_range(0..100_000_000u32))
}

/// An office duty phone in the city's area code, e.g. `0512-65231234`.
pub(crate) fn office_phone(city: CityKind, rng: &mut ChaCha8Rng) -> String {
    match city {
        CityKind::Suzhou => format!("0512-6{:07}", rng.random_range(0..10_000_000u32)),
        CityKind::Beijing => format!("010-6{:07}", rng.random_range(0..10_000_000u32)),
    }
}

const SUZHOU_FIRST: &[&str] = &[
    "长", "新", "东", "西", "南", "北", "文", "华", "金", "宝", "龙", "吴", "越", "兴", "盛", "和", "康", "安", "乐", "锦", "绣", "碧", "翠", "青", "溪", "湖",
    "枫", "竹", "桂", "兰", "莲", "蠡", "横", "旺", "泰", "富", "丰", "清", "友", "尹", "石", "花", "渔",
];
const SUZHOU_SECOND: &[&str] = &[
    "苑", "园", "湾", "桥", "港", "塘", "泾", "浜", "湖", "溪", "山", "庄", "里", "坊", "巷", "街", "门", "城", "阁", "汇", "景", "馨", "悦", "福", "家", "泽",
    "堤", "墅",
];
const BEIJING_FIRST: &[&str] = &[
    "西", "北", "南", "东", "新", "白", "马", "三", "大", "小", "红", "金", "宣", "菜", "枣", "槐", "柳", "椿", "护", "德", "月", "展", "广", "牛", "天", "前",
    "后", "百", "二", "太", "福", "丰", "永", "安", "平", "阜", "兴", "真", "育", "官",
];
const BEIJING_SECOND: &[&str] =
    &["里", "坊", "庄", "园", "门", "街", "巷", "寺", "桥", "营", "厂", "市", "口", "井", "河", "楼", "院", "房", "坛", "苑", "林", "湾", "胡同", "条"];

/// `n` distinct community names (…社区) in the city's style, in random order.
pub(crate) fn communities(city: CityKind, n: usize, rng: &mut ChaCha8Rng) -> Vec<String> {
    let (first, second) = match city {
        CityKind::Suzhou => (SUZHOU_FIRST, SUZHOU_SECOND),
        CityKind::Beijing => (BEIJING_FIRST, BEIJING_SECOND),
    };
    let mut all: Vec<String> = first.iter().flat_map(|a| second.iter().filter(move |b| !b.starts_with(a)).map(move |b| format!("{a}{b}社区"))).collect();
    all.shuffle(rng);
    // Enough for the presets (263); beyond that, number the repeats.
    let base = all.len();
    (0..n).map(|i| if i < base { all[i].clone() } else { format!("{}{}", all[i % base], i / base + 1) }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn names_and_phones_look_right() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        for _ in 0..200 {
            let m = mobile(&mut rng);
            assert_eq!(m.len(), 11, "{m}");
            assert!(m.starts_with('1') && (b'3'..=b'9').contains(&m.as_bytes()[1]), "{m}");
            let p = person(&mut rng);
            assert!((2..=3).contains(&p.chars().count()), "{p}");
        }
        let c = communities(CityKind::Beijing, 263, &mut rng);
        let mut d = c.clone();
        d.sort();
        d.dedup();
        assert_eq!(d.len(), 263);
        assert!(c.iter().all(|n| n.ends_with("社区")));
    }
}
