//! A Metadata API package of the custom fields handoff needs, for an admin
//! to deploy (`handoff doctor --write-package DIR`): `package.xml` and one
//! `objects/{Object}.object` per object, in the Metadata API's file format
//! (deployable with `sf project deploy start --metadata-dir DIR` or any
//! Metadata API client). Pure: the caller writes the files.
//!
//! Task fields live on Activity in the Metadata API (Setup shows them under
//! Activity too), so the task key is `Activity.{name}`.

use handoff_model::{FieldKind, FieldObject, FieldSpec};

/// The files of the package, as (relative path, contents), `package.xml` first.
pub fn metadata_package(fields: &[FieldSpec], api_version: &str) -> Vec<(String, String)> {
    let version = api_version.trim_start_matches('v');
    let mut by_object: Vec<(&str, Vec<&FieldSpec>)> = Vec::new();
    for f in fields {
        let object = object_name(f.object);
        match by_object.iter_mut().find(|(o, _)| *o == object) {
            Some((_, list)) => list.push(f),
            None => by_object.push((object, vec![f])),
        }
    }
    let mut members = String::new();
    for (object, list) in &by_object {
        for f in list {
            members.push_str(&format!("        <members>{}.{}</members>\n", object, xml(&f.name)));
        }
    }
    let package = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Package xmlns=\"http://soap.sforce.com/2006/04/metadata\">\n    <types>\n{members}        <name>CustomField</name>\n    </types>\n    <version>{version}</version>\n</Package>\n"
    );
    let mut files = vec![("package.xml".to_string(), package)];
    for (object, list) in by_object {
        let mut body = String::from(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<CustomObject xmlns=\"http://soap.sforce.com/2006/04/metadata\">\n",
        );
        for f in list {
            body.push_str(&field_xml(f));
        }
        body.push_str("</CustomObject>\n");
        files.push((format!("objects/{object}.object"), body));
    }
    files
}

fn object_name(object: FieldObject) -> &'static str {
    match object {
        FieldObject::Lead => "Lead",
        FieldObject::Task => "Activity",
    }
}

fn field_xml(f: &FieldSpec) -> String {
    let type_lines = match f.kind {
        FieldKind::Number => {
            "        <type>Number</type>\n        <precision>18</precision>\n        <scale>0</scale>\n".to_string()
        }
        FieldKind::DateTime => "        <type>DateTime</type>\n".to_string(),
        FieldKind::Date => "        <type>Date</type>\n".to_string(),
        FieldKind::Boolean => "        <type>Checkbox</type>\n        <defaultValue>false</defaultValue>\n".to_string(),
        FieldKind::Text | FieldKind::Picklist | FieldKind::Other => {
            let length = if f.unique { 80 } else { 255 };
            format!("        <type>Text</type>\n        <length>{length}</length>\n")
        }
    };
    let unique = if f.unique {
        "        <externalId>true</externalId>\n        <unique>true</unique>\n        <caseSensitive>true</caseSensitive>\n"
    } else {
        "        <externalId>false</externalId>\n"
    };
    format!(
        "    <fields>\n        <fullName>{}</fullName>\n        <label>{}</label>\n{type_lines}{unique}        <required>false</required>\n    </fields>\n",
        xml(&f.name),
        xml(&f.label),
    )
}

fn xml(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(object: FieldObject, name: &str, kind: FieldKind, unique: bool) -> FieldSpec {
        FieldSpec { object, name: name.into(), label: format!("{name} label"), kind, unique }
    }

    #[test]
    fn the_package_lists_every_field_and_puts_task_fields_on_activity() {
        let files = metadata_package(
            &[
                spec(FieldObject::Lead, "SLA_Due__c", FieldKind::DateTime, false),
                spec(FieldObject::Lead, "SLA_Breach_Count__c", FieldKind::Number, false),
                spec(FieldObject::Task, "Handoff_Key__c", FieldKind::Text, true),
            ],
            "v62.0",
        );
        let names: Vec<&str> = files.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(names, ["package.xml", "objects/Lead.object", "objects/Activity.object"]);
        let package = &files[0].1;
        assert!(package.contains("<members>Lead.SLA_Due__c</members>"));
        assert!(package.contains("<members>Activity.Handoff_Key__c</members>"));
        assert!(package.contains("<name>CustomField</name>"));
        assert!(package.contains("<version>62.0</version>"));
        let lead = &files[1].1;
        assert!(lead.contains(
            "<fullName>SLA_Due__c</fullName>\n        <label>SLA_Due__c label</label>\n        <type>DateTime</type>"
        ));
        assert!(lead.contains("<type>Number</type>"));
        let activity = &files[2].1;
        assert!(activity.contains("<externalId>true</externalId>\n        <unique>true</unique>"));
        assert!(activity.contains("<length>80</length>"));
    }
}
