fn main() {
    println!("msgrelay: under construction");
}
