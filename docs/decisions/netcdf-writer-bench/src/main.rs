//! Writes N rows of V f64 variables (one dimension, `units` and `_FillValue` each) as a netCDF file, column by
//! column in chunks of 65536 values, with the pure-Rust classic encoder or libnetcdf.
#[path = "../../../../dataset/src/formats/netcdf/classic.rs"]
mod classic;

use std::io::{BufWriter, Write};
use std::time::Instant;

const CHUNK: usize = 65_536;

fn value(var: usize, i: usize) -> f64 {
    (i as f64) * 0.001 + var as f64 * 1e3 + ((i * 7919 + var) % 1013) as f64 * 1e-7
}

fn pure(path: &str, n: usize, vars: usize) {
    use classic::*;
    let mut h = Header::default();
    h.dims.push(Dimension {
        name: "obs".into(),
        len: n as u32,
    });
    for v in 0..vars {
        h.vars.push(Variable {
            name: format!("v{v}"),
            dims: vec![0],
            nc_type: NcType::Double,
            attrs: vec![
                Attribute::text("units", "1"),
                Attribute::new("_FillValue", AttrValue::Doubles(vec![FILL_DOUBLE])),
            ],
        });
    }
    let (bytes, layout) = h.encode().unwrap();
    let mut w = BufWriter::with_capacity(256 << 10, std::fs::File::create(path).unwrap());
    w.write_all(&bytes).unwrap();
    let mut buf = Vec::with_capacity(CHUNK * 8);
    for v in 0..vars {
        let mut i = 0;
        while i < n {
            let end = (i + CHUNK).min(n);
            buf.clear();
            for k in i..end {
                buf.extend_from_slice(&value(v, k).to_be_bytes());
            }
            w.write_all(&buf).unwrap();
            i = end;
        }
        write_padding(&mut w, layout.vars[v].data_len).unwrap();
    }
    w.flush().unwrap();
}

#[cfg(feature = "netcdf-c")]
fn libnetcdf(path: &str, n: usize, vars: usize, format: &str) {
    let opts = match format {
        "cdf2" => netcdf::Options::_64BIT_OFFSET,
        _ => netcdf::Options::NETCDF4,
    };
    let mut f = netcdf::create_with(path, opts).unwrap();
    f.add_dimension("obs", n).unwrap();
    for v in 0..vars {
        let mut var = f.add_variable::<f64>(&format!("v{v}"), &["obs"]).unwrap();
        var.put_attribute("units", "1").unwrap();
        var.set_fill_value(9.969_209_968_386_869e36).unwrap();
    }
    if format == "cdf2" {
        f.enddef().unwrap();
    }
    let mut buf = Vec::with_capacity(CHUNK);
    for v in 0..vars {
        let mut var = f.variable_mut(&format!("v{v}")).unwrap();
        let mut i = 0;
        while i < n {
            let end = (i + CHUNK).min(n);
            buf.clear();
            buf.extend((i..end).map(|k| value(v, k)));
            var.put_values(&buf, i..end).unwrap();
            i = end;
        }
    }
    f.close().unwrap();
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let which = args[1].as_str();
    let n: usize = args[2].parse().unwrap();
    let vars: usize = args[3].parse().unwrap();
    let path = &args[4];
    let t = Instant::now();
    match which {
        "pure" => pure(path, n, vars),
        #[cfg(feature = "netcdf-c")]
        "cdf2" | "nc4" => libnetcdf(path, n, vars, which),
        _ => panic!("unknown writer"),
    }
    let s = t.elapsed().as_secs_f64();
    let size = std::fs::metadata(path).unwrap().len();
    println!(
        "{which} rows={n} vars={vars} seconds={s:.3} rows_per_s={:.0} bytes={size}",
        n as f64 / s
    );
}
