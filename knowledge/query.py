"""What a customer types on WhatsApp, made searchable: the common Brazilian chat abbreviations spelled
out (`vc` -> você, `qnto` -> quanto, `pgto` -> pagamento). Only whole words are replaced and the
original word is kept too, so nothing a customer wrote is lost. Measured in bench/rag_eval.py."""

from __future__ import annotations

import re

ABBREVIATIONS = {
    "vc": "você",
    "vcs": "vocês",
    "voce": "você",
    "q": "que",
    "oq": "o que",
    "pq": "por que",
    "qq": "qualquer",
    "qnd": "quando",
    "qdo": "quando",
    "qnt": "quanto",
    "qnto": "quanto",
    "qto": "quanto",
    "qnta": "quanta",
    "qts": "quantos",
    "qtos": "quantos",
    "qtas": "quantas",
    "tb": "também",
    "tbm": "também",
    "hj": "hoje",
    "amn": "amanhã",
    "amanha": "amanhã",
    "n": "não",
    "ñ": "não",
    "nao": "não",
    "naum": "não",
    "s": "sim",
    "msg": "mensagem",
    "obg": "obrigado",
    "vlw": "valeu",
    "blz": "beleza",
    "p": "para",
    "pra": "para",
    "pro": "para o",
    "td": "tudo",
    "tds": "todos",
    "cmg": "comigo",
    "ctg": "contigo",
    "mt": "muito",
    "mto": "muito",
    "mta": "muita",
    "dps": "depois",
    "agr": "agora",
    "hr": "hora",
    "hrs": "horas",
    "fds": "fim de semana",
    "sab": "sábado",
    "dom": "domingo",
    "seg": "segunda",
    "qual": "qual",
    "ender": "endereço",
    "tel": "telefone",
    "cel": "celular",
    "zap": "whatsapp",
    "wpp": "whatsapp",
    "whats": "whatsapp",
    "pgto": "pagamento",
    "pagto": "pagamento",
    "pix": "pix",
    "cartao": "cartão",
    "cred": "crédito",
    "deb": "débito",
    "parc": "parcela",
    "parcelar": "parcelar",
    "vlr": "valor",
    "val": "valor",
    "preco": "preço",
    "qntd": "quantidade",
    "qtd": "quantidade",
    "qtde": "quantidade",
    "ped": "pedido",
    "entg": "entrega",
    "entrgea": "entrega",
    "frete": "frete",
    "cep": "cep",
    "troca": "troca",
    "devol": "devolução",
    "reembolso": "reembolso",
    "garant": "garantia",
    "info": "informação",
    "infos": "informações",
    "cx": "caixa",
    "ok": "ok",
    "aki": "aqui",
    "aq": "aqui",
    "kd": "cadê",
    "cade": "cadê",
    "tô": "estou",
    "ta": "está",
    "tá": "está",
    "tah": "está",
    "eh": "é",
    "neh": "né",
    "vdd": "verdade",
    "sdds": "saudades",
    "bjs": "beijos",
    "abs": "abraços",
    "niver": "aniversário",
    "aniver": "aniversário",
    "promo": "promoção",
    "desc": "desconto",
    "cupom": "cupom",
    "func": "funciona",
    "funcionamento": "funcionamento",
}
_WORD = re.compile(r"\w+", re.UNICODE)


def query_expand(text: str) -> str:
    """`text` plus the spelled-out form of each chat abbreviation in it."""
    extra = []
    for word in _WORD.findall(text.lower()):
        full = ABBREVIATIONS.get(word)
        if full and full != word:
            extra.append(full)
    return f"{text} {' '.join(extra)}" if extra else text


def query_spell_out(text: str) -> str:
    """`text` with each chat abbreviation replaced by its spelled-out form, in place (what the embedding
    model reads: a sentence as written out, no longer than the customer's)."""
    return _WORD.sub(lambda m: ABBREVIATIONS.get(m.group(0).lower(), m.group(0)), text)
