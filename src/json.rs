//! Values to and from JSON (a journal's records, etcd's values), without
//! silent loss.
//!
//! serde_json writes a NaN or an infinite float as `null` instead of
//! failing, so such a value would be acknowledged and then come back as
//! something else (or not decode at all). Serializing goes through
//! [`Finite`], a pass-through serializer that refuses non-finite floats,
//! so the write fails with `StateError::NotSerializable` instead. (Finite
//! floats round-trip exactly: the feature turns on serde_json's
//! `float_roundtrip`.)

use serde::ser::{self, Serialize, Serializer};

/// Append `value`'s JSON to `buffer`.
pub(crate) fn write<T: Serialize + ?Sized>(
    buffer: &mut Vec<u8>,
    value: &T,
) -> Result<(), serde_json::Error> {
    value.serialize(Finite(&mut serde_json::Serializer::new(buffer)))
}

/// A serializer that passes everything to `S` but non-finite floats.
struct Finite<S>(S);

/// A value serialized through [`Finite`].
struct Checked<'a, T: ?Sized>(&'a T);

impl<T: Serialize + ?Sized> Serialize for Checked<'_, T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(Finite(serializer))
    }
}

fn non_finite<E: ser::Error>(value: f64) -> E {
    E::custom(format_args!(
        "{value} cannot be stored: JSON has no non-finite numbers"
    ))
}

macro_rules! forward {
    ($($method:ident($type:ty)),* $(,)?) => {
        $(fn $method(self, value: $type) -> Result<S::Ok, S::Error> {
            self.0.$method(value)
        })*
    };
}

impl<S: Serializer> Serializer for Finite<S> {
    type Ok = S::Ok;
    type Error = S::Error;
    type SerializeSeq = Finite<S::SerializeSeq>;
    type SerializeTuple = Finite<S::SerializeTuple>;
    type SerializeTupleStruct = Finite<S::SerializeTupleStruct>;
    type SerializeTupleVariant = Finite<S::SerializeTupleVariant>;
    type SerializeMap = Finite<S::SerializeMap>;
    type SerializeStruct = Finite<S::SerializeStruct>;
    type SerializeStructVariant = Finite<S::SerializeStructVariant>;

    forward!(
        serialize_bool(bool),
        serialize_i8(i8),
        serialize_i16(i16),
        serialize_i32(i32),
        serialize_i64(i64),
        serialize_i128(i128),
        serialize_u8(u8),
        serialize_u16(u16),
        serialize_u32(u32),
        serialize_u64(u64),
        serialize_u128(u128),
        serialize_char(char),
        serialize_str(&str),
        serialize_bytes(&[u8]),
        serialize_unit_struct(&'static str),
    );

    fn serialize_f32(self, value: f32) -> Result<S::Ok, S::Error> {
        if !value.is_finite() {
            return Err(non_finite(f64::from(value)));
        }
        self.0.serialize_f32(value)
    }

    fn serialize_f64(self, value: f64) -> Result<S::Ok, S::Error> {
        if !value.is_finite() {
            return Err(non_finite(value));
        }
        self.0.serialize_f64(value)
    }

    fn serialize_none(self) -> Result<S::Ok, S::Error> {
        self.0.serialize_none()
    }

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<S::Ok, S::Error> {
        self.0.serialize_some(&Checked(value))
    }

    fn serialize_unit(self) -> Result<S::Ok, S::Error> {
        self.0.serialize_unit()
    }

    fn serialize_unit_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
    ) -> Result<S::Ok, S::Error> {
        self.0.serialize_unit_variant(name, index, variant)
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        value: &T,
    ) -> Result<S::Ok, S::Error> {
        self.0.serialize_newtype_struct(name, &Checked(value))
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<S::Ok, S::Error> {
        self.0
            .serialize_newtype_variant(name, index, variant, &Checked(value))
    }

    fn serialize_seq(self, len: Option<usize>) -> Result<Self::SerializeSeq, S::Error> {
        self.0.serialize_seq(len).map(Finite)
    }

    fn serialize_tuple(self, len: usize) -> Result<Self::SerializeTuple, S::Error> {
        self.0.serialize_tuple(len).map(Finite)
    }

    fn serialize_tuple_struct(
        self,
        name: &'static str,
        len: usize,
    ) -> Result<Self::SerializeTupleStruct, S::Error> {
        self.0.serialize_tuple_struct(name, len).map(Finite)
    }

    fn serialize_tuple_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Self::SerializeTupleVariant, S::Error> {
        self.0
            .serialize_tuple_variant(name, index, variant, len)
            .map(Finite)
    }

    fn serialize_map(self, len: Option<usize>) -> Result<Self::SerializeMap, S::Error> {
        self.0.serialize_map(len).map(Finite)
    }

    fn serialize_struct(
        self,
        name: &'static str,
        len: usize,
    ) -> Result<Self::SerializeStruct, S::Error> {
        self.0.serialize_struct(name, len).map(Finite)
    }

    fn serialize_struct_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Self::SerializeStructVariant, S::Error> {
        self.0
            .serialize_struct_variant(name, index, variant, len)
            .map(Finite)
    }

    fn is_human_readable(&self) -> bool {
        self.0.is_human_readable()
    }
}

impl<S: ser::SerializeSeq> ser::SerializeSeq for Finite<S> {
    type Ok = S::Ok;
    type Error = S::Error;

    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), S::Error> {
        self.0.serialize_element(&Checked(value))
    }

    fn end(self) -> Result<S::Ok, S::Error> {
        self.0.end()
    }
}

impl<S: ser::SerializeTuple> ser::SerializeTuple for Finite<S> {
    type Ok = S::Ok;
    type Error = S::Error;

    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), S::Error> {
        self.0.serialize_element(&Checked(value))
    }

    fn end(self) -> Result<S::Ok, S::Error> {
        self.0.end()
    }
}

impl<S: ser::SerializeTupleStruct> ser::SerializeTupleStruct for Finite<S> {
    type Ok = S::Ok;
    type Error = S::Error;

    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), S::Error> {
        self.0.serialize_field(&Checked(value))
    }

    fn end(self) -> Result<S::Ok, S::Error> {
        self.0.end()
    }
}

impl<S: ser::SerializeTupleVariant> ser::SerializeTupleVariant for Finite<S> {
    type Ok = S::Ok;
    type Error = S::Error;

    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), S::Error> {
        self.0.serialize_field(&Checked(value))
    }

    fn end(self) -> Result<S::Ok, S::Error> {
        self.0.end()
    }
}

impl<S: ser::SerializeMap> ser::SerializeMap for Finite<S> {
    type Ok = S::Ok;
    type Error = S::Error;

    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), S::Error> {
        self.0.serialize_key(&Checked(key))
    }

    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), S::Error> {
        self.0.serialize_value(&Checked(value))
    }

    fn end(self) -> Result<S::Ok, S::Error> {
        self.0.end()
    }
}

impl<S: ser::SerializeStruct> ser::SerializeStruct for Finite<S> {
    type Ok = S::Ok;
    type Error = S::Error;

    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), S::Error> {
        self.0.serialize_field(key, &Checked(value))
    }

    fn skip_field(&mut self, key: &'static str) -> Result<(), S::Error> {
        self.0.skip_field(key)
    }

    fn end(self) -> Result<S::Ok, S::Error> {
        self.0.end()
    }
}

impl<S: ser::SerializeStructVariant> ser::SerializeStructVariant for Finite<S> {
    type Ok = S::Ok;
    type Error = S::Error;

    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), S::Error> {
        self.0.serialize_field(key, &Checked(value))
    }

    fn skip_field(&mut self, key: &'static str) -> Result<(), S::Error> {
        self.0.skip_field(key)
    }

    fn end(self) -> Result<S::Ok, S::Error> {
        self.0.end()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    fn json<T: serde::Serialize + ?Sized>(value: &T) -> Result<String, String> {
        let mut buffer = Vec::new();
        super::write(&mut buffer, value).map_err(|error| error.to_string())?;
        Ok(String::from_utf8(buffer).unwrap())
    }

    #[test]
    fn finite_values_are_written_as_serde_json_writes_them() {
        let value = serde_json::json!({"a": [1, 2.5, null, "x"], "b": {"c": true}});
        assert_eq!(
            json(&value).unwrap(),
            serde_json::to_string(&value).unwrap()
        );
        let nested: BTreeMap<&str, (Option<f64>, Vec<f32>)> =
            [("k", (Some(0.1), vec![1.5f32]))].into();
        assert_eq!(
            json(&nested).unwrap(),
            serde_json::to_string(&nested).unwrap()
        );
    }

    #[derive(serde::Serialize)]
    struct Unit;

    #[derive(serde::Serialize)]
    struct Newtype(f64);

    #[derive(serde::Serialize)]
    struct Numbers(i8, i16, i32, i64, i128, u8, u16, u32, u64, u128, f32, char);

    #[derive(serde::Serialize)]
    enum Shape {
        Point,
        Scaled(f64),
        Pair(f64, f32),
        Named {
            x: f64,
            #[serde(skip_serializing_if = "Option::is_none")]
            y: Option<f64>,
        },
    }

    fn as_bytes<S: serde::Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(bytes)
    }

    #[derive(serde::Serialize)]
    struct Everything {
        unit: Unit,
        #[serde(skip_serializing_if = "Option::is_none")]
        skipped: Option<u8>,
        newtype: Newtype,
        numbers: Numbers,
        shapes: Vec<Shape>,
        map: BTreeMap<String, f64>,
        some: Option<f64>,
        none: Option<f64>,
        flag: bool,
        text: String,
        pair: (u8, f32),
        #[serde(serialize_with = "as_bytes")]
        raw: Vec<u8>,
        nothing: (),
    }

    fn everything(x: f64) -> Everything {
        Everything {
            unit: Unit,
            skipped: None,
            newtype: Newtype(x),
            numbers: Numbers(-1, -2, -3, -4, -5, 1, 2, 3, 4, 5, 0.5, 'z'),
            shapes: vec![
                Shape::Point,
                Shape::Scaled(x),
                Shape::Pair(x, 1.5),
                Shape::Named { x, y: None },
                Shape::Named { x, y: Some(2.0) },
            ],
            map: [("k".to_string(), x)].into(),
            some: Some(x),
            none: None,
            flag: true,
            text: "t".into(),
            pair: (7, 0.25),
            raw: vec![1, 2],
            nothing: (),
        }
    }

    #[test]
    fn every_shape_of_value_is_passed_through_unchanged() {
        let value = everything(0.1);
        assert_eq!(
            json(&value).unwrap(),
            serde_json::to_string(&value).unwrap()
        );
    }

    #[test]
    fn a_non_finite_float_in_any_position_is_refused() {
        let cases: [fn(&mut Everything); 8] = [
            |v| v.newtype = Newtype(f64::NAN),
            |v| v.numbers.10 = f32::INFINITY,
            |v| v.shapes[1] = Shape::Scaled(f64::NAN),
            |v| v.shapes[2] = Shape::Pair(1.0, f32::NAN),
            |v| {
                v.shapes[3] = Shape::Named {
                    x: f64::NAN,
                    y: None,
                }
            },
            |v| v.map.insert("n".into(), f64::NEG_INFINITY).map_or((), drop),
            |v| v.some = Some(f64::NAN),
            |v| v.pair.1 = f32::NAN,
        ];
        for (at, case) in cases.iter().enumerate() {
            let mut value = everything(1.0);
            case(&mut value);
            assert!(json(&value).is_err(), "case {at} was accepted");
        }
    }

    #[test]
    fn non_finite_floats_anywhere_are_refused() {
        assert!(json(&f64::NAN).unwrap_err().contains("non-finite"));
        assert!(json(&Some(f64::INFINITY)).is_err());
        assert!(json(&vec![1.0, f64::NEG_INFINITY]).is_err());
        assert!(json(&(1u8, f32::NAN)).is_err());
        let map: BTreeMap<String, f64> = [("k".to_string(), f64::NAN)].into();
        assert!(json(&map).is_err());
    }
}
