//! Realistic frames shared by the benches, and the end-to-end load generator.

pub mod commands;
pub mod followers;
pub mod forward;
pub mod latency_logger;
pub mod load;
pub mod reliability;

use hj212_proto::encode;

const HEADER: &str = "QN=20260101120000000;ST=31;CN={cn};PW=123456;MN=010000A8900016F000169DC0;Flag=5;";
const GAS_CODES: &[&str] = &[
    "a21026", "a21002", "a34013", "a19001", "a01012", "a01013", "a01014", "a01011", "a00000", "a21005", "a21024",
    "a21028", "a05001", "a24088", "a01901", "a01902", "a21003", "a21004",
];

/// A framed CN=2011 real-time upload (`Rtd` + `ZsRtd` + `Flag` per factor), about `target` bytes long.
pub fn realtime_frame(target: usize) -> Vec<u8> {
    build("2011", target, |code, i| format!("{code}-Rtd={}.{i:02},{code}-ZsRtd={}.5,{code}-Flag=N", 10 + i, 12 + i))
}

/// A framed CN=2051 minute upload (`Cou`/`Min`/`Avg`/`Max`/`Flag` per factor), about `target` bytes long.
pub fn minute_frame(target: usize) -> Vec<u8> {
    build("2051", target, |code, i| {
        format!("{code}-Cou={i}.25,{code}-Min=1{i}.1,{code}-Avg=1{i}.5,{code}-Max=1{i}.9,{code}-Flag=N")
    })
}

/// Adds factor groups, then a site-information item that makes the frame exactly `target` bytes.
fn build(cn: &str, target: usize, group: impl Fn(&str, usize) -> String) -> Vec<u8> {
    const FRAMING: usize = "##0000".len() + "CP=&&".len() + "&&".len() + "XXXX\r\n".len();
    const PAD: &str = ";i22001-Info=////";
    let mut cp = String::from("DataTime=20260101120000");
    for i in 0.. {
        let next = format!(";{}", group(GAS_CODES[i % GAS_CODES.len()], i));
        if HEADER.len() + FRAMING + cp.len() + next.len() + PAD.len() > target {
            break;
        }
        cp.push_str(&next);
    }
    let fill = target.saturating_sub(HEADER.len() + FRAMING + cp.len() + PAD.len());
    cp.push_str(&PAD.replace("////", &format!("//{}//", "x".repeat(fill))));
    let data = HEADER.replace("{cn}", cn) + "CP=&&" + &cp + "&&";
    encode::frame(data.as_bytes()).expect("benchmark frames fit the length field")
}
