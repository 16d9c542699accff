//! Attribute names → our fields. Our own names (as the store writes them) come first, then the
//! common Chinese column names of city systems; matching ignores case and surrounding spaces.
//! When several columns match one field, the earlier name in the list wins.

use super::SourceLayer;
use super::report::FieldSource;

/// Our grid fields in [`crate::model::GridFields`] order, each with the names it is read from.
pub const GRID_FIELDS: [(&str, &[&str]); 9] = [
    ("code", &["code", "网格编码", "编码", "网格代码", "标识码", "wgbm"]),
    ("name", &["name", "名称", "网格名称", "wgmc"]),
    ("level", &["level", "层级", "级别"]),
    ("parent", &["parent", "上级编码", "上级", "上级网格", "上级网格编码", "父级编码"]),
    ("unit", &["unit", "责任单位"]),
    ("chief_name", &["chief_name", "网格长", "网格长姓名"]),
    ("chief_phone", &["chief_phone", "电话", "网格长电话", "联系电话"]),
    ("valid_from", &["valid_from", "初始时间", "初始日期", "生效日期"]),
    ("valid_to", &["valid_to", "终止日期", "终止时间", "失效日期"]),
];

/// Our component fields in [`crate::model::ComponentFields`] order.
pub const COMPONENT_FIELDS: [(&str, &[&str]); 11] = [
    ("code", &["code", "部件编码", "标识码", "部件标识码", "编码"]),
    ("class", &["class", "小类", "部件小类", "小类编码", "部件小类编码", "分类代码"]),
    ("name", &["name", "名称", "部件名称"]),
    ("dept", &["dept", "主管部门"]),
    ("owner", &["owner", "权属单位"]),
    ("maintainer", &["maintainer", "养护单位"]),
    ("status", &["status", "状态", "部件状态"]),
    ("grid", &["grid", "所在网格", "所在单元网格", "网格编码", "单元网格"]),
    ("created", &["created", "初始日期", "初始时间"]),
    ("updated", &["updated", "变更日期", "变更时间"]),
    ("accuracy", &["accuracy", "精度", "精度等级"]),
];

/// For each of our fields, the file column it is read from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldMap {
    pub columns: Vec<Option<usize>>,
}

impl FieldMap {
    /// Maps `layer`'s columns onto `fields` ([`GRID_FIELDS`] or [`COMPONENT_FIELDS`]).
    pub fn new(layer: &SourceLayer, fields: &[(&str, &[&str])]) -> FieldMap {
        let norm: Vec<String> = layer.columns.iter().map(|c| c.trim().to_lowercase()).collect();
        let columns = fields.iter().map(|(_, names)| names.iter().find_map(|n| norm.iter().position(|c| c == n))).collect();
        FieldMap { columns }
    }

    /// Whether the column `name` is one of the names of `fields`.
    pub fn names_a_field(name: &str, fields: &[(&str, &[&str])]) -> bool {
        let norm = name.trim().to_lowercase();
        fields.iter().any(|(_, names)| names.contains(&norm.as_str()))
    }

    /// The file column each of our fields comes from (for the report).
    pub fn describe(&self, layer: &SourceLayer, fields: &[(&str, &[&str])]) -> Vec<FieldSource> {
        fields.iter().zip(&self.columns).map(|((ours, _), c)| FieldSource { field: ours.to_string(), column: c.map(|c| layer.columns[c].clone()) }).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::Format;

    #[test]
    fn chinese_and_own_names_map_and_own_names_win() {
        let mut layer = SourceLayer::new(Format::Csv);
        layer.columns = ["部件标识码", "小类", "权属单位", " Status ", "网格编码", "code"].map(String::from).to_vec();
        let map = FieldMap::new(&layer, &COMPONENT_FIELDS);
        assert_eq!(map.columns[0], Some(5), "our own `code` wins over 部件标识码");
        assert_eq!((map.columns[1], map.columns[4], map.columns[6], map.columns[7]), (Some(1), Some(2), Some(3), Some(4)));
        assert_eq!(map.columns[2], None);
        let grids = FieldMap::new(&layer, &GRID_FIELDS);
        assert_eq!(grids.columns[0], Some(5));
    }
}
