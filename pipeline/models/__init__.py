"""Models: the ImageNet ResNet backbone (``backbone``) and the weights it starts from
(``weights``: Keras' cache, files, hashes), the features it caches (``features``), the
head trained on them (``head``) and its ``.keras`` file written without Keras
(``head_file``), Wide ResNets (``wide_resnet``), Big Transfer's ResNet-v2 (``bit``) and
its ``.npz`` weights (``bit_npz``), ResNet-9 (``resnet9``), the keras.applications-style
input and top they share (``builder``), whole image classifiers (``classifier``) with
test-time flip averaging (``flip``) and temperature scaling (``temperature``), a head
behind its rebuilt backbone (``rebuild``), what a trained model's card says about its
inputs (``card``), how big a network is (``size``), safe loading (``saving``) and a
trained model whole (``trained``: network, card, temperature, decode and forward pass;
outside training the one loader of a model file).
Importing this package imports no Keras: ``weights`` stays cheap."""
