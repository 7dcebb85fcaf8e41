fn main() {
    // llama.cpp is linked as shared libraries: beside the executable in a build tree, in
    // /usr/lib/nexent-local when installed from the package (see nexent-server's build.rs).
    println!("cargo:rustc-link-arg-bins=-Wl,-rpath,$ORIGIN:$ORIGIN/../lib/nexent-local");
    tauri_build::build();
}
