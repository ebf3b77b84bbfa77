use sha2::{Digest, Sha256};
use xdptcp::simulation::{run_transfer, TransferSpec};

#[test]
fn clean_link_one_mib() {
    let spec = TransferSpec {
        bytes: 1 << 20,
        ..Default::default()
    };
    let (mut hs, mut hr) = (Sha256::new(), Sha256::new());
    let r = run_transfer(
        &spec,
        &mut |b| hs.update(b),
        &mut |b| hr.update(b),
        &mut |_, _| {},
    );
    println!("{r:#?}");
    assert!(r.completed, "{:?}", r.error);
    assert_eq!(hs.finalize(), hr.finalize());
}
