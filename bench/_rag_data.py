"""The question set of bench/rag_eval.py: the knowledge of a fictional bakery in Belo Horizonte,
"Pão de Mel Padaria e Confeitaria", and questions its customers send on WhatsApp, each with the document
that answers it. Styles: informal (chat phrasing), typo, abbrev (chat abbreviations), english, misleading
(the wording names another document's subject), formal."""

from __future__ import annotations

DOCUMENTS: dict[str, str] = {
    "horarios-e-lojas.md": """# Horários e lojas
A Pão de Mel tem duas lojas em Belo Horizonte.
Loja Savassi: Rua Pernambuco, 1200, Savassi. Abre de segunda a sábado das 6h às 21h e domingo das 7h às 13h.
Loja Pampulha: Avenida Otacílio Negrão de Lima, 3500, Pampulha. Abre todos os dias das 7h às 20h.
## Feriados
Nos feriados nacionais as duas lojas abrem das 7h às 13h. No Natal (25/12) e no Ano-Novo (01/01) ficamos fechados.
## Estacionamento
A loja Pampulha tem estacionamento próprio gratuito com 20 vagas. Na Savassi há convênio com o estacionamento da esquina: 1 hora grátis para compras acima de R$ 50.
""",
    "entregas-e-frete.md": """# Entregas e frete
Entregamos em Belo Horizonte, Nova Lima e Contagem, de terça a domingo, das 8h às 18h.
## Taxa de entrega
Frete fixo de R$ 9,90 para bairros até 5 km da loja mais próxima e R$ 14,90 de 5 a 12 km. Acima de 12 km consulte.
Pedidos acima de R$ 120 têm frete grátis dentro de 5 km.
## Prazo
Pedidos feitos até as 15h são entregues no mesmo dia; depois disso, no dia seguinte. Você pode agendar dia e faixa de horário de 2 horas.
Também estamos no iFood e no Rappi, com as taxas dos aplicativos.
Acompanhe a entrega pelo link de rastreio enviado por WhatsApp quando o motoboy sai.
""",
    "formas-de-pagamento.md": """# Formas de pagamento
Aceitamos Pix (chave CNPJ 12.345.678/0001-90), cartões de crédito e débito Visa, Mastercard, Elo e Amex, e vale-refeição Sodexo, Alelo, VR e Ticket.
No crédito parcelamos em até 3 vezes sem juros compras acima de R$ 150.
Para empresas emitimos boleto com vencimento em 15 dias, mediante cadastro do CNPJ.
Não aceitamos cheque. Dinheiro só nas lojas, não na entrega.
Nota fiscal eletrônica é emitida em todas as compras; informe o CPF ou CNPJ no pedido.
""",
    "encomendas-de-bolos.md": """# Encomendas de bolos
Bolos de encomenda precisam de 48 horas de antecedência (bolos de casamento: 15 dias).
Sabores: chocolate belga, ninho com morango, prestígio, doce de leite com ameixa, limão siciliano e red velvet.
Tamanhos: 1 kg (serve 10 pessoas), 2 kg (20 pessoas) e 3 kg (30 pessoas).
Preço: R$ 89 o quilo nos sabores tradicionais e R$ 109 o quilo no red velvet e no ninho com morango.
Para confirmar a encomenda pedimos um sinal de 50% por Pix; o restante é pago na retirada.
Escrita no bolo e topo de papel personalizado saem por R$ 15.
""",
    "cancelamento-trocas-reembolso.md": """# Cancelamento, trocas e reembolso
Encomendas podem ser canceladas sem custo até 24 horas antes da data marcada; depois disso o sinal não é devolvido.
Se um produto chegar danificado ou errado, envie uma foto pelo WhatsApp em até 2 horas após a entrega e trocamos ou devolvemos o valor.
O reembolso é feito pelo mesmo meio de pagamento em até 5 dias úteis (Pix na hora).
Produtos perecíveis não têm troca por arrependimento.
""",
    "alergenicos-e-restricoes.md": """# Alergênicos e restrições alimentares
Temos linha sem glúten produzida em área separada: pão de queijo, bolo de fubá e brownie. Mesmo assim pode haver traços.
Produtos sem lactose: pão francês, baguete, bolo de laranja e os doces marcados com etiqueta verde.
Opções veganas: pão de fermentação natural, cookie de aveia e o bolo de cenoura vegano (sob encomenda).
Produtos diet e zero açúcar: torta de maçã zero e geleias sem açúcar.
Todos os rótulos informam glúten, lactose, ovos, castanhas e amendoim. Na dúvida, pergunte antes de comprar.
""",
    "cestas-cafe-da-manha.md": """# Cestas de café da manhã
Montamos cestas de café da manhã para presente, com entrega entre 7h e 9h30.
Cesta Simples (R$ 139): pães, frios, suco, frutas e um bolo pequeno. Cesta Especial (R$ 219): tudo da simples mais espumante sem álcool, croissants e cartão.
Peça até as 18h do dia anterior. Podemos incluir balão ou pelúcia com custo adicional.
A cesta pode ser entregue em hospitais e empresas; informe o nome de quem recebe.
""",
    "eventos-e-coffee-break.md": """# Eventos e coffee break
Atendemos festas, casamentos e coffee break corporativo a partir de 20 pessoas.
O cardápio de coffee break custa R$ 38 por pessoa com salgados, mini sanduíches, bolo, café, chá e sucos; o cardápio premium custa R$ 55 por pessoa.
Fazemos a montagem com louças e garçom por uma taxa a combinar. Orçamento sem compromisso pelo e-mail eventos@paodemel.com.br.
Para eventos de empresas emitimos nota fiscal e aceitamos boleto.
""",
    "programa-de-fidelidade.md": """# Programa de fidelidade Mel+
A cada R$ 1 gasto você ganha 1 ponto no Mel+. Com 300 pontos troque por um bolo de 1 kg; com 100 pontos, por um café com pão de queijo.
O cadastro é feito pelo CPF no caixa ou pelo nosso WhatsApp.
No mês do aniversário você ganha uma fatia de bolo e 10% de desconto em encomendas.
Os pontos valem por 12 meses. Cupons de desconto não são acumulativos com outras promoções.
""",
    "trabalhe-conosco.md": """# Trabalhe conosco
Estamos sempre contratando padeiros, confeiteiros, atendentes e motoboys.
Envie seu currículo para vagas@paodemel.com.br com o cargo no assunto, ou deixe impresso em qualquer loja.
Oferecemos vale-transporte, refeição no local, plano de saúde após 3 meses e escala 6x1.
Não é preciso experiência para atendente: damos treinamento.
""",
    "perguntas-frequentes.csv": """pergunta,resposta
Vocês têm wi-fi para clientes?,Sim. A rede é PaodeMel-Clientes e a senha fica no balcão.
Posso levar meu cachorro?,Pets são bem-vindos na área externa das duas lojas.
Tem cadeirinha para criança?,Temos cadeirinhas e trocador nas duas lojas.
Vocês vendem pão congelado para assar em casa?,Sim: pão de queijo e pão francês congelados em pacotes de 1 kg.
Qual o número do WhatsApp?,O WhatsApp de pedidos é (31) 99999-1234 para as duas lojas.
Vocês fazem salgados para festa?,Sim: cento de salgados fritos por R$ 75 e assados por R$ 85.
""",
}

# (question, the document that answers it, style)
QUESTIONS: list[tuple[str, str, str]] = [
    # informal
    ("oi, vcs abrem domingo?", "horarios-e-lojas.md", "informal"),
    ("bom dia! ate q horas fica aberto hj na savassi", "horarios-e-lojas.md", "informal"),
    ("quanto fica pra entregar aqui no buritis?", "entregas-e-frete.md", "informal"),
    ("da pra pagar no pix?", "formas-de-pagamento.md", "informal"),
    (
        "queria encomendar um bolo pro niver do meu filho, precisa pedir com quantos dias?",
        "encomendas-de-bolos.md",
        "informal",
    ),
    ("meu pedido chegou todo amassado, e agora??", "cancelamento-trocas-reembolso.md", "informal"),
    ("vcs tem coisa sem gluten? sou celiaca", "alergenicos-e-restricoes.md", "informal"),
    ("quero mandar um cafe da manha surpresa pra minha mae, como faz", "cestas-cafe-da-manha.md", "informal"),
    (
        "to organizando um treinamento na empresa pra 40 pessoas, vcs fazem coffee break?",
        "eventos-e-coffee-break.md",
        "informal",
    ),
    ("como junto pontos ai com vcs?", "programa-de-fidelidade.md", "informal"),
    ("tem vaga de emprego?", "trabalhe-conosco.md", "informal"),
    ("posso levar meu dog?", "perguntas-frequentes.csv", "informal"),
    ("qual a senha do wifi", "perguntas-frequentes.csv", "informal"),
    # typos
    ("vcs entregam em contajem?", "entregas-e-frete.md", "typo"),
    ("aceita cartao de credto parcelado?", "formas-de-pagamento.md", "typo"),
    ("quero cancelar minha emcomenda, devolve o dinheiro?", "cancelamento-trocas-reembolso.md", "typo"),
    ("tem produto sem latose?", "alergenicos-e-restricoes.md", "typo"),
    ("qual o horaro de funcionamento da pampulha", "horarios-e-lojas.md", "typo"),
    ("qnto custa o bolo red velvt?", "encomendas-de-bolos.md", "typo"),
    ("a sesta de cafe da manha tem espumante?", "cestas-cafe-da-manha.md", "typo"),
    ("quero mandar curriculo pra confeiteiro", "trabalhe-conosco.md", "typo"),
    ("vcs vendem salgadinho pra festa? qnto o sento", "perguntas-frequentes.csv", "typo"),
    ("o frete e gratis a partir de quanto?", "entregas-e-frete.md", "typo"),
    ("pontos do mel mais expiram?", "programa-de-fidelidade.md", "typo"),
    # abbreviations
    ("vc aceita vr?", "formas-de-pagamento.md", "abbrev"),
    ("qnd chega o ped se eu pedir agr?", "entregas-e-frete.md", "abbrev"),
    ("qto tempo antes tenho q pedir bolo de casamento?", "encomendas-de-bolos.md", "abbrev"),
    ("tem estac. na loja da pampulha?", "horarios-e-lojas.md", "abbrev"),
    ("q horas abre no feriado?", "horarios-e-lojas.md", "abbrev"),
    ("vcs tem op vegana?", "alergenicos-e-restricoes.md", "abbrev"),
    ("qual o num do zap p pedido", "perguntas-frequentes.csv", "abbrev"),
    ("cesta entrega ate q hrs?", "cestas-cafe-da-manha.md", "abbrev"),
    ("tem desc no mes do niver?", "programa-de-fidelidade.md", "abbrev"),
    ("reembolso cai em qtos dias?", "cancelamento-trocas-reembolso.md", "abbrev"),
    ("vcs fazem orc p casamento?", "eventos-e-coffee-break.md", "abbrev"),
    ("tem cadeirinha p bebe?", "perguntas-frequentes.csv", "abbrev"),
    # English
    ("do you deliver on mondays?", "entregas-e-frete.md", "english"),
    ("can I pay with american express?", "formas-de-pagamento.md", "english"),
    ("what flavors of cake can I order?", "encomendas-de-bolos.md", "english"),
    ("are you open on christmas day?", "horarios-e-lojas.md", "english"),
    ("do you have gluten free bread?", "alergenicos-e-restricoes.md", "english"),
    ("how do I get a refund?", "cancelamento-trocas-reembolso.md", "english"),
    ("breakfast basket price?", "cestas-cafe-da-manha.md", "english"),
    ("are you hiring bakers?", "trabalhe-conosco.md", "english"),
    ("is there wifi?", "perguntas-frequentes.csv", "english"),
    ("catering for a corporate event, price per person?", "eventos-e-coffee-break.md", "english"),
    # misleading wording (names another document's subject)
    ("quanto é o frete do bolo de aniversário?", "entregas-e-frete.md", "misleading"),
    ("posso pagar o bolo de casamento em boleto pela empresa?", "formas-de-pagamento.md", "misleading"),
    (
        "a cesta de café da manhã chegou com o suco vazado, vocês trocam?",
        "cancelamento-trocas-reembolso.md",
        "misleading",
    ),
    ("o bolo de cenoura da encomenda pode ser vegano?", "alergenicos-e-restricoes.md", "misleading"),
    ("ganho pontos comprando a cesta de café?", "programa-de-fidelidade.md", "misleading"),
    ("a loja da savassi emite nota fiscal no pix?", "formas-de-pagamento.md", "misleading"),
    ("motoboy de vocês tem vaga? quero trabalhar com entrega", "trabalhe-conosco.md", "misleading"),
    ("no coffee break de vocês tem opção sem glúten?", "alergenicos-e-restricoes.md", "misleading"),
    ("cancelei a entrega mas quero saber o horário da loja pra retirar", "horarios-e-lojas.md", "misleading"),
    (
        "vocês entregam salgados de festa ou tenho que buscar? quanto custa o cento",
        "perguntas-frequentes.csv",
        "misleading",
    ),
    ("o sinal da encomenda eu pago no cartão ou só pix?", "encomendas-de-bolos.md", "misleading"),
    # formal
    ("Quais são as formas de pagamento aceitas?", "formas-de-pagamento.md", "formal"),
    ("Qual é a política de cancelamento de encomendas?", "cancelamento-trocas-reembolso.md", "formal"),
    ("Qual o valor do quilo do bolo de chocolate belga?", "encomendas-de-bolos.md", "formal"),
    ("Qual é o endereço da loja da Savassi?", "horarios-e-lojas.md", "formal"),
    ("Qual o pedido mínimo de pessoas para eventos?", "eventos-e-coffee-break.md", "formal"),
    ("Como faço o cadastro no programa de fidelidade?", "programa-de-fidelidade.md", "formal"),
    ("Quais benefícios vocês oferecem aos funcionários?", "trabalhe-conosco.md", "formal"),
    ("É possível acompanhar a entrega em tempo real?", "entregas-e-frete.md", "formal"),
]
