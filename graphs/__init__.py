"""The example graphs, shipped in flowml's wheel as the package ``flowml.examples`` (the root
setup.py maps this folder there): ``flowml examples`` lists them, ``flowml examples copy NAME
DIR`` copies one out and builds the models it uses. Add a graph here and it ships."""
