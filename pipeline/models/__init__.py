"""Models: the ImageNet ResNet backbone (``backbone``) and the weights it starts from
(``weights``: Keras' cache, files, hashes), the features it caches (``features``), the
head trained on them (``head``), Wide ResNets (``wide_resnet``), Big Transfer's ResNet-v2
(``bit``) and its ``.npz`` weights (``bit_npz``), the keras.applications-style input and
top they share (``builder``), whole image classifiers (``classifier``), a head behind its
rebuilt backbone (``rebuild``), safe loading (``saving``), what a card says of the decode
(``card``) and a trained model whole (``trained``: network, card, temperature, decode and
forward pass; outside training the one loader of a model file). Importing this package
imports no Keras: ``weights`` stays cheap."""
