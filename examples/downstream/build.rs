fn main() {
    m2m_build::Generator::new()
        .document("openapi/inventory.yaml")
        .generate()
}
