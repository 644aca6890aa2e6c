# contrib/: benchmarks and helper programs that are not part of the product.
